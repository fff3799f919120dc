import Foundation

/// Reads the entries of a zip archive whose members are stored uncompressed, as
/// `torch.save` writes them (zip64 records understood). Compressed members are
/// reported, not inflated.
struct StoredZipArchive {
    let bytes: [UInt8]
    let source: String
    /// Entry name -> byte range of its data.
    private(set) var entries: [String: Range<Int>] = [:]

    static func isZip(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) }

    init(_ bytes: [UInt8], source: String) throws {
        self.bytes = bytes
        self.source = source
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> Int { u32(o) | u32(o + 4) << 32 }
        // End of central directory: last occurrence of its signature.
        var eocd = bytes.count - 22
        while eocd >= 0 && !(u32(eocd) == 0x0605_4B50) { eocd -= 1 }
        guard eocd >= 0 else { throw MetricsError("\(source): zip end-of-central-directory record not found") }
        var count = u16(eocd + 10), dirOffset = u32(eocd + 16)
        if eocd >= 20 && u32(eocd - 20) == 0x0706_4B50 {   // zip64 locator
            let z = u64(eocd - 20 + 8)
            guard z + 56 <= bytes.count, u32(z) == 0x0606_4B50 else { throw MetricsError("\(source): bad zip64 record") }
            count = u64(z + 32); dirOffset = u64(z + 48)
        }
        var p = dirOffset
        for _ in 0..<count {
            guard p + 46 <= bytes.count, u32(p) == 0x0201_4B50 else { throw MetricsError("\(source): bad zip central directory") }
            let method = u16(p + 10)
            var size = u32(p + 20)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let name = String(decoding: bytes[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            // zip64 extended information: present values replace the 0xFFFFFFFF fields, in order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = u16(e + 2)
                if id == 0x0001 {
                    var f = e + 4
                    if u32(p + 24) == 0xFFFF_FFFF { f += 8 }               // uncompressed size
                    if u32(p + 20) == 0xFFFF_FFFF { size = u64(f); f += 8 }
                    if u32(p + 42) == 0xFFFF_FFFF { local = u64(f) }
                }
                e += 4 + length
            }
            guard method == 0 else { throw MetricsError("\(source): zip member \(name) is compressed (method \(method)); expected torch.save's stored members") }
            guard local + 30 <= bytes.count, u32(local) == 0x0403_4B50 else { throw MetricsError("\(source): bad local header for \(name)") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start + size <= bytes.count else { throw MetricsError("\(source): zip member \(name) is truncated") }
            entries[name] = start..<(start + size)
            p += 46 + nameLength + extraLength + commentLength
        }
    }

    func data(_ name: String) throws -> ArraySlice<UInt8> {
        guard let r = entries[name] else { throw MetricsError("\(source): zip member \(name) missing") }
        return bytes[r]
    }
}
