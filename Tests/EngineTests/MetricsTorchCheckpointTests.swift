import Foundation
import Testing
@testable import Engine

@Suite struct MetricsTorchCheckpointTests {
    static let torchAvailable: Bool = (try? MetricsPythonReference.run("import torch; print('ok')", arguments: [])) == "ok"

    @Test(.enabled(if: torchAvailable, "python3 with torch not installed"), arguments: [false, true])
    func readsTorchSaveStateDicts(legacy: Bool) throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Float/double/int64 tensors, a transposed (strided) view, two tensors sharing
        // one storage at an offset, and a scalar; values written alongside as float32.
        let script = """
        import sys, torch, collections
        torch.manual_seed(1)
        base = torch.randn(5, 4)
        sd = collections.OrderedDict()
        sd["a.weight"] = torch.randn(3, 2, 3, 3)
        sd["b.double"] = torch.randn(7).double()
        sd["c.count"] = torch.tensor(12345, dtype=torch.int64)
        sd["d.transposed"] = base.t()
        sd["e.slice"] = base[2:]
        sd["f.param"] = torch.nn.Parameter(torch.randn(4))
        torch.save(sd, sys.argv[1], _use_new_zipfile_serialization=(sys.argv[3] == "zip"))
        with open(sys.argv[2], "w") as f:
            for k, v in sd.items():
                v = v.detach().float().contiguous()
                f.write(k + " " + ",".join(str(s) for s in v.shape) + " " + " ".join(repr(float(x)) for x in v.flatten()) + "\\n")
        """
        let pth = dir.appendingPathComponent("sd.pth"), txt = dir.appendingPathComponent("sd.txt")
        _ = try MetricsPythonReference.run(script, arguments: [pth.path, txt.path, legacy ? "legacy" : "zip"])
        let loaded = try TorchCheckpoint.load(pth)
        let lines = try String(contentsOf: txt, encoding: .utf8).split(separator: "\n")
        #expect(loaded.count == lines.count)
        for line in lines {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            let name = String(parts[0])
            let shape = parts[1].isEmpty ? [] : parts[1].split(separator: ",").map { Int($0)! }
            let values = parts[2...].map { Float(Double($0)!) }
            let t = try #require(loaded[name], "\(name) missing")
            #expect(t.shape == shape, "\(name)")
            #expect(t.data == values, "\(name)")
        }
    }

    @Test func rejectsAFileThatIsNotACheckpoint() throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("not.pth")
        try Data("hello".utf8).write(to: file)
        #expect { try TorchCheckpoint.load(file) } throws: { error in
            "\(error)".contains(file.path)
        }
    }
}
