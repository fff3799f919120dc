import CEngineSupport
import Foundation

/// `kind: shell` — runs `cmd` with /bin/sh in strict mode (`set -eu`, and `pipefail` where the shell
/// has it) in a fresh scratch directory, in its own process group that dies with the runner. Declared `outs` (relative to that
/// directory) become the artifact; `deps` (relative to the project directory) enter the key by content.
/// Consumed stages' artifacts are available as `$PDPIPE_IN_<NAME>` and `${inputs.NAME}`; params listed in
/// `params` as `$PDPIPE_PARAM_<KEY>` (dots -> `_`). A `metrics.json` of numbers written to the scratch
/// directory becomes the stage's metrics.
public struct ShellStage: StageKind {
    public init() {}
    public var name: String { "shell" }
    public var version: Int { 2 }  // 2: strict mode (set -eu, pipefail)
    public struct Config: StageConfig, Equatable {
        /// Required; the initial value is never used.
        public var cmd = ""
        public var deps: [String] = []
        public var outs: [String] = []
        /// Param keys the command reads; the runner passes their values in `StageContext.paramValues`.
        public var params: [String] = []
        public var env: [String: String] = [:]

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("cmd", \.cmd, help: "command run by /bin/sh in the stage's scratch directory", required: true),
            .field("deps", \.deps, help: "files/directories read, relative to the project"),
            .field("outs", \.outs, help: "paths the command writes, relative to its working directory"),
            .field("params", \.params, help: "param keys the command reads (exported as PDPIPE_PARAM_*)", listsParamKeys: true),
            .field("env", \.env, help: "extra environment variables"),
        ]
    }

    public func externalPaths(_ config: Config, projectDirectory: URL) -> [URL] {
        config.deps.map { $0.hasPrefix("/") ? URL(fileURLWithPath: $0) : projectDirectory.appendingPathComponent($0) }
    }

    public func validate(_ config: Config) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        for out in config.outs where out.hasPrefix("/") || out.split(separator: "/").contains("..") || out.isEmpty {
            problems.append(ConfigProblem("outs", "out `\(out)` must be a relative path inside the working directory"))
        }
        if Set(config.outs).count != config.outs.count { problems.append(ConfigProblem("outs", "an out is listed twice")) }
        return problems
    }

    /// Environment-variable form of a name: `real_p` -> `REAL_P`, `train.lr` -> `TRAIN_LR`.
    public static func envName(_ s: String) -> String {
        String(s.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        let fm = FileManager.default
        // A fresh directory per attempt. The command of a killed earlier attempt may still be running
        // (an orphan): removing its directory makes its writes fail, even through absolute paths,
        // instead of landing among this attempt's outputs. The stage lock is held, so no live run uses them.
        for old in (try? fm.contentsOfDirectory(atPath: context.workDirectory.path)) ?? [] where old.hasPrefix("cwd") {
            try? fm.removeItem(at: context.workDirectory.appendingPathComponent(old))
        }
        let scratch = context.workDirectory.appendingPathComponent("cwd-" + UUID().uuidString.prefix(8).lowercased())
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)

        var cmd = config.cmd
        var env = ProcessInfo.processInfo.environment
        for (name, url) in context.inputs {
            env["PDPIPE_IN_" + Self.envName(name)] = url.path
            cmd = cmd.replacingOccurrences(of: "${inputs.\(name)}", with: shellQuote(url.path))
        }
        for (k, v) in context.paramValues { env["PDPIPE_PARAM_" + Self.envName(k)] = v.shortDescription }
        for (k, v) in config.env { env[k] = v }
        env["PDPIPE_PROJECT_DIR"] = context.projectDirectory.path
        env["PDPIPE_STAGE"] = context.cellID

        // Strict mode, as Snakemake's: a failing command, an unset variable or (where the shell has
        // it: bash, not the dash 0.5.12 of Debian 12) a failing pipe stage fails the stage instead of being ignored.
        // One line, so the shell's line numbers in error messages are the command's own.
        let script = "set -eu; (set -o pipefail) 2>/dev/null && set -o pipefail; " + cmd
        let pipe = Pipe()
        let pid = Self.spawn(["/bin/sh", "-c", script], env: env, cwd: scratch.path,
                             output: pipe.fileHandleForWriting.fileDescriptor)
        try? pipe.fileHandleForWriting.close()
        guard pid > 0 else { throw StageError("cannot start /bin/sh: \(String(cString: strerror(-pid)))") }
        let tail = LogTail()

        // Stream the command's output as log lines, keeping the tail for failure messages.
        let reader = DispatchGroup()
        let handle = pipe.fileHandleForReading
        let emit = context.emit
        DispatchQueue.global().async(group: reader) {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    tail.add(line); emit(.log(line))
                }
            }
            if !pending.isEmpty {
                let line = String(decoding: pending, as: UTF8.self)
                tail.add(line); emit(.log(line))
            }
        }
        // The command runs in its own process group (pid = group id), so a terminal Ctrl-C does not
        // reach it: forward SIGINT to the whole group, then SIGKILL whatever is left after a grace period.
        // This thread waits for it: the death signal that stops orphans is tied to the spawning thread.
        var cancelledAt: Date?
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if context.isCancelled() && cancelledAt == nil {
                cancelledAt = Date()
                kill(-pid, SIGINT)
            } else if let t = cancelledAt, Date().timeIntervalSince(t) > 3 {
                kill(-pid, SIGKILL)
            }
            usleep(20_000)
        }
        // A background process the command left behind would hold the pipe open: end the group.
        kill(-pid, SIGKILL)
        let cancelled = cancelledAt != nil
        reader.wait()
        if cancelled || context.isCancelled() { throw StageCancelled() }
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff, signal = status & 0x7f
        guard exited, code == 0 else {
            let how = exited ? "exit status \(code)" : "signal \(signal)"
            throw StageError("command failed with \(how); last output:\n" + tail.lines.map { "  | " + $0 }.joined(separator: "\n"))
        }

        var metrics: [String: Double] = [:]
        let metricsFile = scratch.appendingPathComponent("metrics.json")
        if let data = try? Data(contentsOf: metricsFile) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw StageError("metrics.json must be a JSON object of numbers")
            }
            for (k, v) in object {
                if let n = v as? NSNumber { metrics[k] = n.doubleValue }
            }
        }
        let outs = config.outs
        let missing = outs.filter { !fm.fileExists(atPath: scratch.appendingPathComponent($0).path) }
        if !missing.isEmpty {
            let names = missing.map { "`\($0)`" }.joined(separator: ", ")
            throw StageError("declared out\(missing.count > 1 ? "s" : "") \(names) not written by the command "
                             + "(outs are relative to its working directory, a fresh scratch directory; "
                             + "the project is $PDPIPE_PROJECT_DIR)")
        }
        try Self.collect(outs: outs, from: scratch, to: context.outputDirectory)
        return StageOutcome(metrics: metrics)
    }

    /// An out as path components inside the working directory; `.` (or `./`) is the whole directory (empty).
    public static func outComponents(_ out: String) -> [String] {
        out.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    /// Moves the declared outs from the scratch directory into the output directory, as regular files
    /// and directories only: the artifact is hashed, stored and consumed by content, so a symlink
    /// would record its target's content (or nothing, for a directory) and let consumers read
    /// whatever it points at. Symlinks to something inside the scratch directory are replaced by a
    /// copy of it; symlinks that leave it, and FIFOs, devices and sockets, fail the stage naming the out.
    static func collect(outs: [String], from scratch: URL, to output: URL) throws {
        let fm = FileManager.default
        // Everything below works on the resolved path, so "inside the scratch directory" is a prefix test.
        let scratchReal = try realPath(scratch.path, out: ".")
        let scratch = URL(fileURLWithPath: scratchReal)
        for out in outs {
            let parts = outComponents(out)
            let source = parts.isEmpty ? scratch : scratch.appendingPathComponent(parts.joined(separator: "/"))
            var st = stat()
            guard lstat(source.path, &st) == 0 else { throw StageError("declared out `\(out)` was not written by the command") }
            try materialise(source.path, out: out, scratch: scratchReal)
            if parts.isEmpty {
                // `outs: ["."]`: everything the command wrote.
                for name in try fm.contentsOfDirectory(atPath: scratch.path) {
                    try fm.moveItem(at: scratch.appendingPathComponent(name), to: output.appendingPathComponent(name))
                }
            } else {
                let target = output.appendingPathComponent(parts.joined(separator: "/"))
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try fm.moveItem(at: source, to: target)
            }
        }
    }

    /// fork/exec through `pd_spawn_group` (C), which Foundation's Process cannot do: its own process
    /// group plus a death signal that ends the group when the runner dies.
    static func spawn(_ argv: [String], env: [String: String], cwd: String, output: Int32) -> pid_t {
        let envStrings = env.map { $0.key + "=" + $0.value }
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = envStrings.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        return cArgs.withUnsafeMutableBufferPointer { a in
            cEnv.withUnsafeMutableBufferPointer { e in
                pd_spawn_group(argv[0], a.baseAddress, e.baseAddress, cwd, output)
            }
        }
    }

    private static func realPath(_ path: String, out: String) throws -> String {
        guard let p = realpath(path, nil) else {
            throw StageError("out `\(out)`: `\(path)` is a dangling symbolic link")
        }
        defer { free(p) }
        return String(cString: p)
    }

    /// Replaces symlinks under `path` (itself included) by copies of what they point at inside `scratch`.
    private static func materialise(_ path: String, out: String, scratch: String) throws {
        let fm = FileManager.default
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR:
            for name in try fm.contentsOfDirectory(atPath: path) { try materialise(path + "/" + name, out: out, scratch: scratch) }
        case S_IFLNK:
            let target = try realPath(path, out: out)
            let shown = String(path.dropFirst(scratch.count + 1))
            guard target.hasPrefix(scratch + "/") else {
                throw StageError("out `\(out)`: `\(shown)` is a symbolic link to `\(target)`, outside the stage's working "
                                 + "directory; copy the content instead (e.g. `cp -rL`)")
            }
            let linkParent = (try? realPath((path as NSString).deletingLastPathComponent, out: out)) ?? scratch
            if linkParent == target || linkParent.hasPrefix(target + "/") {
                throw StageError("out `\(out)`: `\(shown)` is a symbolic link to a directory that contains it")
            }
            try fm.removeItem(atPath: path)
            try fm.copyItem(atPath: target, toPath: path)
            try materialise(path, out: out, scratch: scratch)
        default:
            let what = st.st_mode & S_IFMT == S_IFIFO ? "a FIFO" : st.st_mode & S_IFMT == S_IFSOCK ? "a socket" : "a device"
            throw StageError("out `\(out)`: `\(String(path.dropFirst(scratch.count + 1)))` is \(what); outs must be regular files and directories")
        }
    }

    private func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

/// The last lines of a command's output (thread-safe).
final class LogTail: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [String] = []
    private let limit = 20
    func add(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        buffer.append(line)
        if buffer.count > limit { buffer.removeFirst(buffer.count - limit) }
    }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return buffer }
}
