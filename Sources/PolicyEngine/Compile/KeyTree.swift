import ConsentModel

/// A compiled taxonomy tree (purposes or data categories) over vocabulary ids, with precomputed
/// ancestry so that "does key A cover key B" is two array reads and a compare.
public struct KeyTree: Sendable {
    /// Declared key → vocabulary id.
    let ids: ByteKeyTable<UInt32>
    /// Vocabulary id → depth (1 for a root key); 0 for ids that are not in this tree.
    let depths: [UInt8]
    /// `ancestors[id * stride + (d - 1)]` is the id of the ancestor at depth `d` (the key itself at its own depth).
    let ancestors: [UInt32]
    let stride: Int
    /// Declared keys in declaration order.
    public let keys: [String]
    /// Declared keys that have no children, in declaration order.
    public let leaves: [String]

    init(keys: [String], vocabulary table: KeyTable) {
        var ids: [String: UInt32] = [:]
        for key in keys { ids[key] = table.intern(key) }
        let idTable = ByteKeyTable(keys.map { ($0, ids[$0]!) })
        let maxID = ids.values.max().map(Int.init) ?? -1
        let stride = max(1, keys.map { $0.split(separator: ".").count }.max() ?? 1)
        var depths = [UInt8](repeating: 0, count: maxID + 1)
        var ancestors = [UInt32](repeating: UInt32.max, count: (maxID + 1) * stride)
        for key in keys {
            let id = Int(ids[key]!)
            let parts = key.split(separator: ".")
            depths[id] = UInt8(min(parts.count, 255))
            for depth in 1...parts.count {
                let prefix = parts[0..<depth].joined(separator: ".")
                ancestors[id * stride + depth - 1] = ids[prefix] ?? UInt32.max
            }
        }
        var parents = Set<String>()
        for key in keys {
            if let dot = key.lastIndex(of: ".") { parents.insert(String(key[..<dot])) }
        }
        self.ids = idTable
        self.depths = depths
        self.ancestors = ancestors
        self.stride = stride
        self.keys = keys
        self.leaves = keys.filter { !parents.contains($0) }
    }

    /// The vocabulary id of a declared key.
    @inline(__always)
    public func id(of key: String) -> UInt32? { ids[key] }

    /// The vocabulary id of a declared key given as UTF-8 bytes.
    @inline(__always)
    public func id(ofBytes key: UnsafeRawBufferPointer) -> UInt32? { ids.lookup(key) }

    /// Depth of a key (1 for a root), 0 when the id is not in this tree.
    @inline(__always)
    public func depth(_ id: UInt32) -> Int {
        Int(id) < depths.count ? Int(depths[Int(id)]) : 0
    }

    /// Whether key `a` covers key `b`: `a` is `b` or one of its ancestors. False when either is undeclared.
    @inline(__always)
    public func covers(_ a: UInt32, _ b: UInt32) -> Bool {
        let da = depth(a)
        guard da != 0 else { return false }
        let db = depth(b)
        return da <= db && ancestors[Int(b) * stride + da - 1] == a
    }

    /// Whether `key` is declared.
    public func contains(_ key: String) -> Bool { ids[key] != nil }
}
