import CPNG
import Foundation

/// gzip (RFC 1952) through zlib: `inflateInit2` with 16 + MAX_WBITS selects the gzip wrapper.
public enum Gzip {
    /// Decompresses a whole gzip stream; `name` is the file named in errors.
    public static func decompress(_ input: [UInt8], name: String) throws -> [UInt8] {
        guard input.count >= 18, input[0] == 0x1f, input[1] == 0x8b else {
            throw DataError("\(name): not a gzip file (\(input.count) bytes, bad magic)")
        }
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError("\(name): zlib could not initialise inflate")
        }
        defer { inflateEnd(&stream) }
        // The trailer's ISIZE (size mod 2^32) is a good first guess for the output size; deflate
        // cannot expand more than 1032:1, which bounds the guess when the trailer is garbage.
        let isize = Int(input[input.count - 4]) | Int(input[input.count - 3]) << 8
            | Int(input[input.count - 2]) << 16 | Int(input[input.count - 1]) << 24
        var output = [UInt8](repeating: 0, count: max(min(isize, input.count * 1032), 1024))
        var produced = 0
        var status: Int32 = Z_OK
        input.withUnsafeBufferPointer { src in
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!)
            stream.avail_in = uInt(src.count)
            while status == Z_OK {
                if produced == output.count { output.append(contentsOf: repeatElement(0, count: output.count)) }
                output.withUnsafeMutableBufferPointer { dst in
                    stream.next_out = dst.baseAddress! + produced
                    stream.avail_out = uInt(dst.count - produced)
                    status = inflate(&stream, Z_NO_FLUSH)
                    produced = dst.count - Int(stream.avail_out)
                }
                // Z_BUF_ERROR with output space left means the input ran out: a truncated file.
                if status == Z_BUF_ERROR && produced < output.count { break }
                if status == Z_BUF_ERROR { status = Z_OK }
            }
        }
        guard status == Z_STREAM_END else {
            let reason = status == Z_BUF_ERROR ? "truncated (stream ends early)" : "corrupt (zlib error \(status))"
            throw DataError("\(name): gzip data \(reason)")
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Compresses into a gzip stream (used to write test fixtures and by anyone storing `.gz`).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let ok = deflateInit2_(&stream, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(ok == Z_OK, "zlib deflateInit2 failed")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let produced = input.withUnsafeMutableBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                stream.next_in = src.baseAddress
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = uInt(dst.count)
                let status = deflate(&stream, Z_FINISH)
                precondition(status == Z_STREAM_END, "zlib deflate did not finish (\(status))")
                return dst.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(produced...)
        return output
    }
}

/// Reads a whole file as bytes, with an error naming it when it is missing or unreadable.
public func readFileBytes(_ url: URL) throws -> [UInt8] {
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw DataError("\(url.path): file not found")
    }
    do {
        return [UInt8](try Data(contentsOf: url))
    } catch {
        throw DataError("\(url.path): cannot read (\(error.localizedDescription))")
    }
}
