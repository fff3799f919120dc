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
    }
}
