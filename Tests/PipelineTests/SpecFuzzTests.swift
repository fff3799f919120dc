import Foundation
import Testing
@testable import Pipeline

/// Seeded random mutations of valid pipeline and experiment files through the library path
/// (YAML -> spec -> expansion), issue 7.5. No input may crash or hang the loader; every rejection
/// is a SpecError whose every diagnostic names a place (`file:line:column`, or the file for an
/// unreadable one); every accepted file expands to unique cell ids (the runner relies on it).
/// `PDPIPE_FUZZ_ITERATIONS` (default 2000) and `PDPIPE_FUZZ_SEED` for long runs.
@Suite struct SpecFuzzTests {
    struct Seed { var experiment: Bool; var text: String }

    /// Valid inputs: the scenario pipeline and experiment, the corpus' helper pipelines, and the
    /// project's own pipelines/ and experiments/ files.
    static func seeds(project f: Fixture) throws -> [Seed] {
        try f.writeScenario()
        var seeds = [Seed(experiment: false, text: try String(contentsOf: f.url("pipelines/scenario.yaml"), encoding: .utf8)),
                     Seed(experiment: true, text: "pipeline: ../pipelines/scenario.yaml\nparams:\n  eval:\n    mode: slow\nmatrix:\n  train.lr: [0.1, 0.2]\n  prep.factor: [1, 2]\n")]
        let fm = FileManager.default
        let lib = BadInputTests.directory.appendingPathComponent("lib")
        for name in try fm.contentsOfDirectory(atPath: lib.path).sorted() where name.hasSuffix(".yaml") {
            let text = try String(contentsOf: lib.appendingPathComponent(name), encoding: .utf8)
            try f.write("pipelines/lib/" + name, text)
            seeds.append(Seed(experiment: false, text: text))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for dir in ["pipelines", "experiments"] {
            let url = root.appendingPathComponent(dir)
            for name in ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).sorted() where name.hasSuffix(".yaml") {
                let text = try String(contentsOf: url.appendingPathComponent(name), encoding: .utf8)
                if dir == "pipelines" { try f.write("pipelines/" + name, text) }
                seeds.append(Seed(experiment: dir == "experiments", text: text))
            }
        }
        return seeds
    }

    /// Characters YAML and the interpolation syntax give meaning to, plus some that are just odd.
    static let alphabet: [UInt8] = Array(":-[]{},#&*!|>'\"%@`\t\n ${}.=0123456789abcxyz\\".utf8) + [0, 0x7f, 0xc3, 0xff]

    static func mutate(_ text: String, _ rng: inout Reliability.Random) -> [UInt8] {
        var bytes = Array(text.utf8)
        for _ in 0..<(1 + rng.int(3)) {
            var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
            let li = rng.int(lines.count)
            switch rng.int(9) {
            case 0 where !bytes.isEmpty:  // flip a byte to a meaningful character
                bytes[rng.int(bytes.count)] = alphabet[rng.int(alphabet.count)]
            case 1 where !bytes.isEmpty:  // random bit flip
                bytes[rng.int(bytes.count)] ^= UInt8(1 << rng.int(8))
            case 2, 3:  // delete or duplicate a token (a run of non-space bytes)
                let tokens = tokenRanges(bytes)
                guard !tokens.isEmpty else { continue }
                let t = tokens[rng.int(tokens.count)]
                if rng.int(2) == 0 { bytes.removeSubrange(t) } else { bytes.insert(contentsOf: Array(bytes[t]) + [32], at: t.lowerBound) }
            case 4:  // indent or dedent a line
                let delta = rng.int(4) + 1
                if rng.int(2) == 0 { lines[li].insert(contentsOf: Array(repeating: 32, count: delta), at: 0) }
                else { lines[li].removeFirst(min(delta, lines[li].prefix { $0 == 32 }.count)) }
                bytes = Array(lines.joined(separator: [10]))
            case 5:  // duplicate, delete or swap lines
                switch rng.int(3) {
                case 0: lines.insert(lines[li], at: li)
                case 1: lines.remove(at: li)
                default: lines.swapAt(li, rng.int(lines.count))
                }
                bytes = Array(lines.joined(separator: [10]))
            case 6:  // an interpolation, valid-looking or not
                let pieces = ["${train.lr}", "${", "${inputs.prep}", "$${x}", "${a b}", "${train}", "${}"]
                bytes.insert(contentsOf: Array(pieces[rng.int(pieces.count)].utf8), at: rng.int(bytes.count + 1))
            case 7:  // truncate
                bytes.removeLast(rng.int(bytes.count + 1))
            default:  // change a number
                let numbers = ["-1", "0", "1e308", "-0.0", ".nan", ".inf", "99999999999999999999", "0x10", "1_000"]
                let tokens = tokenRanges(bytes).filter { bytes[$0].allSatisfy { (48...57).contains($0) || $0 == 46 } }
                guard let t = tokens.isEmpty ? nil : tokens[rng.int(tokens.count)] else { continue }
                bytes.replaceSubrange(t, with: Array(numbers[rng.int(numbers.count)].utf8))
            }
        }
        return bytes
    }

    static func randomOverride(_ rng: inout Reliability.Random) -> String {
        let keys = ["train.lr", "prep.factor", "eval.mode", "train", "train.seed", "dataset.resolution", "x", "", "train.lr.x"]
        let values = ["0.1", "0.1,0.2", "1,1", "", ",", "a,b,a", "${train.lr}", ".nan", "-1", "[1, 2]", "{a: 1}", "1e999", "fast"]
        let key = keys[rng.int(keys.count)], value = values[rng.int(values.count)]
        return rng.int(10) == 0 ? key : key + "=" + value
    }

    static func tokenRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = [], start: Int?
        for (i, b) in bytes.enumerated() {
            let space = b == 32 || b == 10
            if !space && start == nil { start = i }
            if space, let s = start { out.append(s..<i); start = nil }
        }
        if let s = start { out.append(s..<bytes.count) }
        return out
    }

    struct Tally { var accepted = 0, rejected = 0, slowest = 0.0 }

    /// One input through the loader; returns a problem description when an invariant breaks.
    static func check(_ file: URL, overrides: [String] = []) -> (accepted: Bool, problem: String?) {
        do {
            let expansion = try SpecLoader.expansion(file, overrides: overrides)
            let ids = expansion.instances.map(\.id)
            if Set(ids).count != ids.count { return (true, "duplicate cell ids \(ids)") }
            for inst in expansion.instances {
                for (_, upstream) in inst.inputs where !ids.contains(upstream) { return (true, "\(inst.id) consumes unknown \(upstream)") }
            }
            _ = try Runner.select([], from: expansion)
            return (true, nil)
        } catch let e as SpecError {
            if e.diagnostics.isEmpty { return (false, "SpecError without diagnostics") }
            for d in e.diagnostics where d.location == nil && !d.message.contains(".yaml") && !d.message.hasPrefix("-S ") {
                return (false, "diagnostic without a place: \(d.message)")
            }
            return (false, nil)
        } catch {
            return (false, "not a SpecError: \(type(of: error)) \(error)")
        }
    }

    @Test func mutatedSpecsNeverCrashAndEveryRejectionNamesAPlace() throws {
        let env = ProcessInfo.processInfo.environment
        let iterations = Int(env["PDPIPE_FUZZ_ITERATIONS"] ?? "") ?? 2000
        let seed = UInt64(env["PDPIPE_FUZZ_SEED"] ?? "") ?? 1
        let f = try Fixture()
        let seeds = try Self.seeds(project: f)
        #expect(seeds.count >= 5)
        // Unmutated seeds are all valid.
        for (i, s) in seeds.enumerated() {
            let url = f.url(s.experiment ? "experiments/seed\(i).yaml" : "pipelines/seed\(i).yaml")
            try Data(s.text.utf8).write(to: url)
            #expect(Self.check(url).accepted, "seed \(i) is not valid: \(String(describing: try? SpecLoader.expansion(url)))")
        }
        var rng = Reliability.Random(seed: seed)
        var tally = Tally()
        let started = Date()
        for i in 0..<iterations {
            let s = seeds[rng.int(seeds.count)]
            let bytes = Self.mutate(s.text, &rng)
            let url = f.url(s.experiment ? "experiments/fuzz.yaml" : "pipelines/fuzz.yaml")
            try Data(bytes).write(to: url)
            // A quarter of the inputs also get `-S` overrides (sets, sweeps, junk).
            let overrides = rng.int(4) == 0 ? (0..<(1 + rng.int(2))).map { _ in Self.randomOverride(&rng) } : []
            let t0 = Date()
            let (accepted, problem) = Self.check(url, overrides: overrides)
            tally.slowest = max(tally.slowest, Date().timeIntervalSince(t0))
            if accepted { tally.accepted += 1 } else { tally.rejected += 1 }
            if let problem {
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-fuzz-failure-\(seed)-\(i).yaml")
                try? Data(bytes).write(to: path)
                Issue.record("iteration \(i) (seed \(seed)): \(problem); overrides \(overrides); input kept at \(path.path)")
            }
        }
        let seconds = Date().timeIntervalSince(started)
        print("spec fuzz: \(iterations) iterations (seed \(seed)) in \(String(format: "%.1f", seconds)) s: \(tally.accepted) accepted, "
              + "\(tally.rejected) rejected with located errors, slowest input \(String(format: "%.1f", tally.slowest * 1000)) ms")
        // A hang detector, not a speed goal: generous, since tests share the cores with builds.
        #expect(tally.slowest < 10, "an input took \(tally.slowest) s")
    }
}
