import Foundation

/// A minimal unpickler for the subset of protocols 2-4 that `torch.save` state
/// dicts use (no arbitrary code: globals are kept as names, and only the torch
/// rebuild functions and OrderedDict are interpreted).
public struct PickleReader {
    let bytes: [UInt8]
    public private(set) var position: Int
    let source: String

    public init(_ bytes: [UInt8], at position: Int = 0, source: String) {
        self.bytes = bytes
        self.position = position
        self.source = source
    }

    func fail(_ message: String) -> MetricsError {
        MetricsError("\(source): pickle byte \(position): \(message)")
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard position + n <= bytes.count else { throw fail("unexpected end of data") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }
    mutating func byte() throws -> UInt8 { try take(1).first! }
    mutating func littleEndian(_ n: Int) throws -> UInt64 {
        try take(n).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw fail("unterminated line") }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    /// Reads one pickle up to its STOP opcode; `persistent` resolves BINPERSID ids.
    public mutating func load(persistent: (PickleValue) throws -> PickleValue = { $0 }) throws -> PickleValue {
        var stack: [PickleValue] = []
        var memo: [Int: PickleValue] = [:]
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            return v
        }
        func popToMark() throws -> [PickleValue] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { return true } else { return false } }) else {
                throw fail("MARK not found")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }
        func string(_ n: Int) throws -> PickleValue { .string(String(decoding: try take(n), as: UTF8.self)) }

        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                      // PROTO
            case 0x95: _ = try take(8)                                     // FRAME
            case 0x2E: return try pop()                                    // STOP
            case 0x28: stack.append(.mark)                                 // MARK
            case 0x4E: stack.append(.none)                                 // NONE
            case 0x88: stack.append(.bool(true))                           // NEWTRUE
            case 0x89: stack.append(.bool(false))                          // NEWFALSE
            case 0x7D: stack.append(.dict(PickleDict()))                   // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                   // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                            // EMPTY_TUPLE
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try littleEndian(4)))))  // BININT
            case 0x4B: stack.append(.int(Int(try byte())))                 // BININT1
            case 0x4D: stack.append(.int(Int(try littleEndian(2))))        // BININT2
            case 0x8A, 0x8B:                                               // LONG1, LONG4
                let n = op == 0x8A ? Int(try byte()) : Int(try littleEndian(4))
                let raw = Array(try take(n))
                guard n <= 8 else { stack.append(.bigInt(raw)); break }
                var v: Int64 = 0
                for (i, b) in raw.enumerated() { v |= Int64(b) << (8 * Int64(i)) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                stack.append(.int(Int(v)))
            case 0x47:                                                     // BINFLOAT (big-endian)
                let b = Array(try take(8))
                stack.append(.float(Double(bitPattern: b.reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(try string(Int(try littleEndian(4))))  // BINUNICODE
            case 0x8C: stack.append(try string(Int(try byte())))           // SHORT_BINUNICODE
            case 0x8D: stack.append(try string(Int(try littleEndian(8))))  // BINUNICODE8
            case 0x54: stack.append(try string(Int(try littleEndian(4))))  // BINSTRING
            case 0x55: stack.append(try string(Int(try byte())))           // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try take(Int(try littleEndian(4))))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(Int(try byte())))))          // SHORT_BINBYTES
            case 0x71: memo[Int(try byte())] = stack.last                  // BINPUT
            case 0x72: memo[Int(try littleEndian(4))] = stack.last         // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                       // MEMOIZE
            case 0x68, 0x6A:                                               // BINGET, LONG_BINGET
                let i = op == 0x68 ? Int(try byte()) : Int(try littleEndian(4))
                guard let v = memo[i] else { throw fail("memo \(i) missing") }
                stack.append(v)
            case 0x63:                                                     // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module: module, name: name))
            case 0x93:                                                     // STACK_GLOBAL
                let name = try pop(), module = try pop()
                stack.append(.global(module: module.stringValue ?? "", name: name.stringValue ?? ""))
            case 0x74: stack.append(.tuple(try popToMark()))               // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                   // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))      // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x51: stack.append(try persistent(try pop()))             // BINPERSID
            case 0x52, 0x81:                                               // REDUCE, NEWOBJ
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x62: _ = try pop()                                       // BUILD: object state (e.g. _metadata) is not needed
            case 0x61:                                                     // APPEND
                let v = try pop()
                guard case .list(let l) = stack.last else { throw fail("APPEND to a non-list") }
                l.items.append(v)
            case 0x65:                                                     // APPENDS
                let items = try popToMark()
                guard case .list(let l) = stack.last else { throw fail("APPENDS to a non-list") }
                l.items.append(contentsOf: items)
            case 0x73:                                                     // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = stack.last else { throw fail("SETITEM on a non-dict") }
                d.entries.append((k, v))
            case 0x75:                                                     // SETITEMS
                let items = try popToMark()
                guard case .dict(let d) = stack.last, items.count % 2 == 0 else { throw fail("SETITEMS on a non-dict") }
                for i in stride(from: 0, to: items.count, by: 2) { d.entries.append((items[i], items[i + 1])) }
            default:
                position -= 1
                throw fail(String(format: "unsupported pickle opcode 0x%02x", op))
            }
        }
    }

    /// Interprets the few callables a state dict uses; anything else stays opaque.
    func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let module, let name) = callable else { return .object(callable: callable, arguments: args) }
        let a = args.tupleValue ?? []
        switch (module, name) {
        case ("collections", "OrderedDict"):
            return .dict(PickleDict())
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard a.count >= 4, case .storage(let key, let type, _) = a[0], let offset = a[1].intValue,
                  let size = a[2].tupleValue?.compactMap(\.intValue), let stride = a[3].tupleValue?.compactMap(\.intValue),
                  size.count == stride.count
            else { throw fail("malformed \(name) arguments") }
            return .tensor(TensorReference(storageKey: key, storageType: type, storageOffset: offset, shape: size, strides: stride))
        case ("torch._utils", "_rebuild_parameter"):
            guard let data = a.first else { throw fail("malformed _rebuild_parameter arguments") }
            return data
        default:
            return .object(callable: callable, arguments: args)
        }
    }
}
