import Foundation
import Testing
@testable import Engine

private let fontInstalled = FileManager.default.fileExists(atPath: EmojiSource.defaultFont.path)

@Suite("Data: Noto Color Emoji (CBLC/CBDT)")
struct DataEmojiTests {
    @Test("all 3,926 bitmaps are found and a known glyph decodes to 136x128 RGBA",
          .enabled(if: fontInstalled, "fonts-noto-color-emoji is not installed (NotoColorEmoji.ttf missing)"))
    func realFont() throws {
        let source = try EmojiSource()
        #expect(source.count == 3926)
        let ids = source.font.glyphs.map(\.glyphID)
        #expect(ids == ids.sorted() && Set(ids).count == ids.count)
        let first = try source.image(at: 0)
        #expect(first.width == 136 && first.height == 128 && first.channels == 4)
        let last = try source.image(at: source.count - 1)
        #expect(last.width == 136 && last.height == 128)
        // Every bitmap is a PNG whose IHDR (read here byte by byte) says 136x128.
        for glyph in source.font.glyphs {
            let png = Array(source.font.pngData(glyph))
            func be32(_ o: Int) -> Int { Int(png[o]) << 24 | Int(png[o + 1]) << 16 | Int(png[o + 2]) << 8 | Int(png[o + 3]) }
            #expect(png.starts(with: [0x89, 0x50, 0x4e, 0x47]) && be32(16) == 136 && be32(20) == 128, "glyph \(glyph.glyphID)")
        }
    }

    @Test("a font without CBDT and a truncated font are errors naming the file")
    func badFonts() throws {
        // A bare sfnt header listing one 'glyf' table and nothing else.
        let plain: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 16, 0, 0, 0, 0] + Array("glyf".utf8) + [UInt8](repeating: 0, count: 12)
        var error = #expect(throws: DataError.self) { try ColorBitmapFont(data: plain, name: "plain.ttf") }
        #expect(error?.message == "plain.ttf: font has no CBLC and CBDT table (not a colour bitmap font)")
        // Declares two tables but stops inside the table directory.
        let cut: [UInt8] = [0, 1, 0, 0, 0, 2, 0, 32, 0, 1, 0, 0] + Array("CBDT".utf8)
        error = #expect(throws: DataError.self) { try ColorBitmapFont(data: cut, name: "cut.ttf") }
        #expect(error?.message.hasPrefix("cut.ttf: truncated or corrupt font") == true)
    }

    @Test("the real font cut short is refused, naming it",
          .enabled(if: fontInstalled, "fonts-noto-color-emoji is not installed (NotoColorEmoji.ttf missing)"))
    func truncatedRealFont() throws {
        let bytes = try readFileBytes(EmojiSource.defaultFont)
        let error = #expect(throws: DataError.self) { try ColorBitmapFont(data: Array(bytes.prefix(bytes.count / 2)), name: "half.ttf") }
        #expect(error?.message.hasPrefix("half.ttf: ") == true)
    }
}
