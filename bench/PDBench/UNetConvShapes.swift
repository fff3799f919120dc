/// The convolutions of EDM's SongUNet (DDPM++, encoder "standard", decoder "standard") for a
/// config, as (inChannels, outChannels, kernel, resolution) with multiplicity. Mirrors the
/// module construction in EDM's networks.py: every UNetBlock has conv0/conv1 3x3, a 1x1 skip
/// conv when channels change or it resamples (resample_proj=True), and qkv/proj 1x1 convs
/// when it has attention; up/down blocks convolve at the resampled resolution.
struct ConvUse: Hashable, Comparable {
    let inChannels, outChannels, kernel, resolution: Int
    static func < (a: ConvUse, b: ConvUse) -> Bool {
        (a.resolution, a.kernel, a.inChannels, a.outChannels) > (b.resolution, b.kernel, b.inChannels, b.outChannels)
    }
}

func songUNetConvs(resolution: Int, inChannels: Int, outChannels: Int, modelChannels: Int,
                   channelMult: [Int], numBlocks: Int, attentionResolutions: Set<Int>) -> [ConvUse: Int] {
    var uses: [ConvUse: Int] = [:]
    func conv(_ i: Int, _ o: Int, _ k: Int, _ r: Int) { uses[ConvUse(inChannels: i, outChannels: o, kernel: k, resolution: r), default: 0] += 1 }
    func block(_ i: Int, _ o: Int, _ r: Int, resample: Bool, attention: Bool) {
        conv(i, o, 3, r); conv(o, o, 3, r)
        if i != o || resample { conv(i, o, 1, r) }
        if attention { conv(o, 3 * o, 1, r); conv(o, o, 1, r) }
    }
    var skips: [Int] = []
    var cout = inChannels
    for (level, mult) in channelMult.enumerated() {
        let res = resolution >> level
        if level == 0 {
            conv(cout, modelChannels, 3, res); cout = modelChannels
        } else {
            block(cout, cout, res, resample: true, attention: false)
        }
        skips.append(cout)
        for _ in 0..<numBlocks {
            let cin = cout
            cout = modelChannels * mult
            block(cin, cout, res, resample: false, attention: attentionResolutions.contains(res))
            skips.append(cout)
        }
    }
    for (level, mult) in channelMult.enumerated().reversed() {
        let res = resolution >> level
        if level == channelMult.count - 1 {
            block(cout, cout, res, resample: false, attention: true)
            block(cout, cout, res, resample: false, attention: false)
        } else {
            block(cout, cout, res, resample: true, attention: false)
        }
        for idx in 0...numBlocks {
            let cin = cout + skips.removeLast()
            cout = modelChannels * mult
            block(cin, cout, res, resample: false, attention: idx == numBlocks && attentionResolutions.contains(res))
        }
    }
    conv(cout, outChannels, 3, resolution)
    return uses
}
