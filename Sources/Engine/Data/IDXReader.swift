/// The IDX format of (Fashion-)MNIST: magic (0, 0, type 0x08 = uint8, rank), big-endian uint32
/// dimensions, then the row-major bytes.
public struct IDXArray: Sendable, Equatable {
    public var dimensions: [Int]
    public var bytes: [UInt8]

    public init(dimensions: [Int], bytes: [UInt8]) {
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// Parses an (already decompressed) IDX file; `name` is used in errors.
    public init(parsing data: [UInt8], name: String) throws {
        guard data.count >= 4, data[0] == 0, data[1] == 0 else {
            throw DataError("\(name): not an IDX file (bad magic)")
        }
        guard data[2] == 0x08 else {
            throw DataError("\(name): IDX element type 0x\(String(data[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let rank = Int(data[3])
        guard rank >= 1, data.count >= 4 + 4 * rank else {
            throw DataError("\(name): truncated IDX header (rank \(rank), \(data.count) bytes)")
        }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]))
        }
        let header = 4 + 4 * rank
        let expected = dims.reduce(1, *)
        guard data.count - header == expected else {
            let what = data.count - header < expected ? "truncated" : "has trailing bytes"
            throw DataError("\(name): IDX data \(what): dimensions \(dims) need \(expected) bytes, found \(data.count - header)")
        }
        dimensions = dims
        bytes = Array(data[header...])
    }

    /// Serialises to the IDX layout (the inverse of `init(parsing:)`).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions { out += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)] }
        return out + bytes
    }

    /// Reads a gzip'd IDX file.
    public static func read(gzipFile url: URL) throws -> IDXArray {
        let raw = try Gzip.decompress(try readFileBytes(url), name: url.path)
        return try IDXArray(parsing: raw, name: url.path)
    }
}

import Foundation
