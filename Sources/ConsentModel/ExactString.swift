/// A string compared and hashed by its UTF-8 bytes, for dictionary keys and sets of values
/// that come from outside (subject ids, idempotency keys, sources, purposes in records).
///
/// Swift's `String` equality is Unicode canonical equivalence: NFC `"josé"` and NFD
/// `"jose\u{301}"` are equal as `String`s, while SQLite, the index and the wire compare bytes.
/// Keying a dictionary by `String` would merge two customers; keying it by `ExactString` cannot.
public struct ExactString: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The string; equal `ExactString`s have equal UTF-8 bytes.
    public let value: String

    /// Wraps `value`.
    @inlinable
    public init(_ value: String) { self.value = value }

    @inlinable
    public static func == (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.value.utf8.elementsEqual(rhs.value.utf8)
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(value.utf8.count)
        for byte in value.utf8 { hasher.combine(byte) }
    }

    /// Byte-wise (UTF-8) order, as SQLite's BINARY collation orders text.
    @inlinable
    public static func < (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8)
    }

    public var description: String { value }
}
