import Foundation

/// A long-lived `bench/reference/block_bench.py --serve` process: PyTorch measurements on
/// request, interleaved with ours so both see the same machine load. Nil if torch (or python)
/// is unavailable.
final class TorchReference {
    let process = Process()
    let input = Pipe(), output = Pipe()
    var buffer = Data()
    let info: [String: Any]

    init?(python: String, threads: Int, batch: Int, runs: Int) {
        let script = repositoryFile("bench/reference/block_bench.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--serve", "--threads", "\(threads)", "--batch", "\(batch)", "--runs", "\(runs)"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        var first: [String: Any]? = nil
        buffer = Data()
        first = TorchReference.readLine(output.fileHandleForReading, &buffer)
        guard let first else { process.terminate(); return nil }
        info = first
    }

    static func readLine(_ h: FileHandle, _ buffer: inout Data) -> [String: Any]? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                return (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
            }
            let chunk = h.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    func request(_ json: String) -> [String: Any]? {
        input.fileHandleForWriting.write((json + "\n").data(using: .utf8)!)
        let r = TorchReference.readLine(output.fileHandleForReading, &buffer)
        // Let PyTorch's OpenMP workers stop spinning before we measure.
        Thread.sleep(forTimeInterval: 0.3)
        return r
    }

    func convMilliseconds(_ cin: Int, _ cout: Int, _ k: Int, _ r: Int) -> Double? {
        request("{\"conv\": [\(cin), \(cout), \(k), \(r)]}")?["conv_ms"] as? Double
    }

    func block() -> (forward: Double, total: Double)? {
        guard let r = request("{\"block\": true}"), let t = r["block_ms"] as? Double, let f = r["block_forward_ms"] as? Double else { return nil }
        return (f, t)
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
