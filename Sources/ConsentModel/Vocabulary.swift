import Synchronization

/// An append-only table that interns strings (taxonomy keys, sources) to small integers.
/// Names are compared by their bytes (`ExactString`), never by Unicode equivalence.
///
/// Ids are dense, start at 0 and never change, so compact records and compiled policy sets that
/// were built against the same table agree on what an id means. Interning takes a lock; reading
/// a name back is for the cold path only.
public final class KeyTable: Sendable {
    private struct State {
        var ids: [ExactString: UInt32] = [:]
        var names: [String] = []
    }
    private let state = Mutex(State())

    /// Creates an empty table.
    public init() {}

    /// The id of `name`, assigning the next free id the first time it is seen.
    public func intern(_ name: String) -> UInt32 {
        state.withLock { state in
            if let id = state.ids[ExactString(name)] { return id }
            let id = UInt32(state.names.count)
            state.ids[ExactString(name)] = id
            state.names.append(name)
            return id
        }
    }

    /// The id of `name` if it was interned before.
    public func lookup(_ name: String) -> UInt32? {
        state.withLock { $0.ids[ExactString(name)] }
    }

    /// The name behind `id`, or nil for an id this table never handed out.
    public func name(_ id: UInt32) -> String? {
        state.withLock { Int(id) < $0.names.count ? $0.names[Int(id)] : nil }
    }

    /// How many names have been interned.
    public var count: Int { state.withLock { $0.names.count } }
}

/// The three id spaces every compact record and compiled policy set share:
/// purposes, data categories and record sources.
public final class Vocabulary: Sendable {
    /// Purpose keys (`marketing.advertising.targeted`).
    public let purposes = KeyTable()
    /// Data category keys (`user.location.precise`).
    public let dataCategories = KeyTable()
    /// Record sources (`web`, `app`, `import`, …).
    public let sources = KeyTable()

    /// Creates an empty vocabulary.
    public init() {}
}
