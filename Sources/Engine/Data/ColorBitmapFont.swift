import Foundation

/// The colour bitmaps of an OpenType font with CBLC/CBDT tables (Noto Color Emoji): CBLC's
/// strikes and index subtables (formats 1-5) locate each glyph's record in CBDT, whose formats
/// 17/18/19 (small metrics / big metrics / no metrics) hold a PNG.
public struct ColorBitmapFont: Sendable {
    /// Where one glyph's PNG sits inside the font file.
    public struct Glyph: Sendable, Equatable {
        public var glyphID: Int
        public var imageFormat: Int
        public var pngOffset: Int
        public var pngLength: Int
    }

    public let name: String
    /// Pixels per em of the strike used (the largest one when there are several).
    public let ppem: Int
    /// Glyphs with a bitmap, in glyph-id order.
    public let glyphs: [Glyph]
    let data: [UInt8]

    public init(contentsOf url: URL) throws {
        try self.init(data: try readFileBytes(url), name: url.path)
    }

    public init(data: [UInt8], name: String) throws {
        self.name = name
        self.data = data
        let bytes = FontBytes(data: data, name: name)
        // sfnt header: version, numTables, then 16-byte table records (tag, checksum, offset, length).
        let tableCount = try bytes.u16(4)
        var tables: [String: (offset: Int, length: Int)] = [:]
        for t in 0..<tableCount {
            let record = 12 + 16 * t
            let tag = String(decoding: try bytes.slice(record, 4), as: UTF8.self)
            tables[tag] = (try bytes.u32(record + 8), try bytes.u32(record + 12))
        }
        guard let cblc = tables["CBLC"], let cbdt = tables["CBDT"] else {
            let missing = ["CBLC", "CBDT"].filter { tables[$0] == nil }.joined(separator: " and ")
            throw DataError("\(name): font has no \(missing) table (not a colour bitmap font)")
        }
        _ = try bytes.slice(cblc.offset, cblc.length)
        _ = try bytes.slice(cbdt.offset, cbdt.length)

        // Pick the strike (BitmapSize record, 48 bytes each after the 8-byte header) with the largest ppem.
        let sizeCount = try bytes.u32(cblc.offset + 4)
        guard sizeCount > 0 else { throw DataError("\(name): CBLC table lists no bitmap strikes") }
        var best = 0, bestPPEM = -1
        for s in 0..<sizeCount {
            let ppemY = try bytes.u8(cblc.offset + 8 + 48 * s + 45)
            if ppemY > bestPPEM { best = s; bestPPEM = ppemY }
        }
        ppem = bestPPEM
        let size = cblc.offset + 8 + 48 * best
        let arrayStart = cblc.offset + (try bytes.u32(size))
        let subtableCount = try bytes.u32(size + 8)

        var found: [Glyph] = []
        for s in 0..<subtableCount {
            let entry = arrayStart + 8 * s
            let first = try bytes.u16(entry), last = try bytes.u16(entry + 2)
            guard last >= first else { throw DataError("\(name): CBLC index subtable \(s) has glyph range \(first)...\(last)") }
            let header = arrayStart + (try bytes.u32(entry + 4))
            let indexFormat = try bytes.u16(header)
            let imageFormat = try bytes.u16(header + 2)
            let imageData = cbdt.offset + (try bytes.u32(header + 4))
            // (glyph id, offset of its record from imageData, record length)
            var records: [(Int, Int, Int)] = []
            switch indexFormat {
            case 1, 3:
                // Offsets for first...last+1 (uint32 or uint16); equal neighbours mean "no bitmap".
                let width = indexFormat == 1 ? 4 : 2
                for g in first...last {
                    let at = header + 8 + width * (g - first)
                    let start = width == 4 ? try bytes.u32(at) : try bytes.u16(at)
                    let end = width == 4 ? try bytes.u32(at + 4) : try bytes.u16(at + 2)
                    if end > start { records.append((g, start, end - start)) }
                }
            case 2:
                // Constant image size, metrics in the subtable.
                let imageSize = try bytes.u32(header + 8)
                for g in first...last { records.append((g, (g - first) * imageSize, imageSize)) }
            case 4:
                let glyphCount = try bytes.u32(header + 8)
                for k in 0..<glyphCount {
                    let at = header + 12 + 4 * k
                    let start = try bytes.u16(at + 2), end = try bytes.u16(at + 6)
                    if end > start { records.append((try bytes.u16(at), start, end - start)) }
                }
            case 5:
                let imageSize = try bytes.u32(header + 8)
                let glyphCount = try bytes.u32(header + 20)
                for k in 0..<glyphCount { records.append((try bytes.u16(header + 24 + 2 * k), k * imageSize, imageSize)) }
            default:
                throw DataError("\(name): CBLC index subtable format \(indexFormat) is not defined (1-5)")
            }
            for (glyphID, offset, length) in records {
                found.append(try Self.locatePNG(bytes, glyphID: glyphID, imageFormat: imageFormat,
                                                record: imageData + offset, length: length))
            }
        }
        glyphs = found.sorted { $0.glyphID < $1.glyphID }
    }

    /// Skips the metrics of a CBDT record and checks the PNG length against the record.
    private static func locatePNG(_ bytes: FontBytes, glyphID: Int, imageFormat: Int, record: Int, length: Int) throws -> Glyph {
        let metrics: Int
        switch imageFormat {
        case 17: metrics = 5   // smallGlyphMetrics
        case 18: metrics = 8   // bigGlyphMetrics
        case 19: metrics = 0   // metrics live in CBLC
        default:
            throw DataError("\(bytes.name): glyph \(glyphID) uses CBDT image format \(imageFormat); only the PNG formats 17, 18, 19 are supported")
        }
        let pngLength = try bytes.u32(record + metrics)
        guard metrics + 4 + pngLength <= length else {
            throw DataError("\(bytes.name): glyph \(glyphID): PNG of \(pngLength) bytes overruns its \(length)-byte CBDT record")
        }
        _ = try bytes.slice(record + metrics + 4, pngLength)
        return Glyph(glyphID: glyphID, imageFormat: imageFormat, pngOffset: record + metrics + 4, pngLength: pngLength)
    }

    /// The glyph's PNG bytes.
    public func pngData(_ glyph: Glyph) -> ArraySlice<UInt8> {
        data[glyph.pngOffset..<glyph.pngOffset + glyph.pngLength]
    }

    /// The glyph decoded (RGBA).
    public func image(_ glyph: Glyph) throws -> ByteImage {
        try PNGCodec.decode(Array(pngData(glyph)), name: "\(name) (glyph \(glyph.glyphID))")
    }
}

/// Bounds-checked big-endian reads; an out-of-range read means a truncated or corrupt font.
struct FontBytes {
    let data: [UInt8]
    let name: String

    func slice(_ offset: Int, _ count: Int) throws -> ArraySlice<UInt8> {
        guard offset >= 0, count >= 0, offset <= data.count - count else {
            throw DataError("\(name): truncated or corrupt font (needs bytes \(offset)..<\(offset + count), file has \(data.count))")
        }
        return data[offset..<offset + count]
    }
    func u8(_ offset: Int) throws -> Int { Int(try slice(offset, 1).first!) }
    func u16(_ offset: Int) throws -> Int {
        let s = try slice(offset, 2); return Int(s[offset]) << 8 | Int(s[offset + 1])
    }
    func u32(_ offset: Int) throws -> Int {
        let s = try slice(offset, 4)
        return Int(s[offset]) << 24 | Int(s[offset + 1]) << 16 | Int(s[offset + 2]) << 8 | Int(s[offset + 3])
    }
}

/// Noto Color Emoji's bitmaps as a data set: RGBA PNGs composited on white, in glyph-id order.
public struct EmojiSource: ImageSource {
    public static let defaultFont = URL(fileURLWithPath: "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    public let sourceName = "emoji"
    public let font: ColorBitmapFont
    public var count: Int { font.glyphs.count }
    public var labels: [Int] { [Int](repeating: -1, count: count) }
    public let labelNames: [String] = []
    public let files: [URL]
    public let background: UInt8 = 255

    public init(font url: URL = defaultFont) throws {
        font = try ColorBitmapFont(contentsOf: url)
        guard !font.glyphs.isEmpty else { throw DataError("\(url.path): the font's CBLC table locates no bitmaps") }
        files = [url]
    }

    public func itemName(at index: Int) -> String { "\(font.name) (glyph \(font.glyphs[index].glyphID))" }

    public func image(at index: Int) throws -> ByteImage {
        try font.image(font.glyphs[index])
    }
}
