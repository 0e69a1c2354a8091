#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fast, seeded 64-bit hash of UTF-8 bytes (subject ids, taxonomy keys) (multiply–xorshift, 8 bytes per step).
///
/// The seed is chosen per process so that clients cannot precompute colliding subject ids.
public enum ByteHash {
    /// The per-process seed.
    public static let seed: UInt64 = UInt64.random(in: 1...UInt64.max)

    /// The hash of `bytes`.
    @inlinable @inline(__always)
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        var index = 0
        let count = bytes.count
        while index + 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            index += 8
        }
        if index < count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while index < count {
                tail |= UInt64(bytes[index]) << shift
                shift += 8
                index += 1
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        }
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        h ^= h >> 32
        return h
    }

    /// Calls `body` with the subject's UTF-8 bytes, copying only for non-contiguous (bridged) strings.
    @inlinable @inline(__always)
    public static func withBytes<R>(_ subject: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = subject.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        let copy = Array(subject.utf8)
        return copy.withUnsafeBytes(body)
    }
}

/// An immutable string → value table on UTF-8 bytes with `ByteHash`: faster than a
/// `Dictionary<String, …>` for the short keys of the hot path, and allocation-free to query.
public struct ByteKeyTable<Value: Sendable>: Sendable {
    @usableFromInline
    struct Slot: Sendable {
        @usableFromInline var hash: UInt64
        @usableFromInline var offset: UInt32
        @usableFromInline var length: UInt32
        @usableFromInline var value: Value?
    }
    @usableFromInline let slots: [Slot]
    @usableFromInline let mask: Int
    /// The longest key's length: a longer query is not hashed at all (a request cannot make the
    /// hot path hash a megabyte per lookup).
    @usableFromInline let longestKey: Int
    @usableFromInline let arena: [UInt8]

    /// Builds a table; later duplicates of a key are ignored.
    public init(_ entries: some Sequence<(String, Value)>) {
        let list = Array(entries)
        var capacity = 8
        while capacity < list.count * 2 { capacity <<= 1 }
        var slots = [Slot](repeating: Slot(hash: 0, offset: 0, length: 0, value: nil), count: capacity)
        var arena: [UInt8] = []
        let mask = capacity - 1
        for (key, value) in list {
            let bytes = Array(key.utf8)
            let hash = bytes.withUnsafeBytes { ByteHash.hash($0) }
            var position = Int(truncatingIfNeeded: hash) & mask
            var duplicate = false
            while slots[position].value != nil {
                let slot = slots[position]
                if slot.hash == hash && Array(arena[Int(slot.offset)..<Int(slot.offset + slot.length)]) == bytes { duplicate = true; break }
                position = (position + 1) & mask
            }
            if duplicate { continue }
            slots[position] = Slot(hash: hash, offset: UInt32(arena.count), length: UInt32(bytes.count), value: value)
            arena.append(contentsOf: bytes)
        }
        self.slots = slots
        self.mask = mask
        self.arena = arena
        self.longestKey = list.map { $0.0.utf8.count }.max() ?? 0
    }

    /// The value for `key`, if present.
    @inlinable @inline(__always)
    public subscript(key: String) -> Value? {
        ByteHash.withBytes(key) { lookup($0) }
    }

    /// The value for the key whose UTF-8 bytes are `bytes`, if present.
    @inlinable @inline(__always)
    public func lookup(_ bytes: UnsafeRawBufferPointer) -> Value? {
        guard bytes.count <= longestKey else { return nil }
        let hash = ByteHash.hash(bytes)
        var position = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBytes { arena in
                while true {
                    let slot = slots[position]
                    guard let value = slot.value else { return nil }
                    if slot.hash == hash && Int(slot.length) == bytes.count
                        && (bytes.count == 0 || memcmp(arena.baseAddress! + Int(slot.offset), bytes.baseAddress!, bytes.count) == 0) {
                        return value
                    }
                    position = (position + 1) & mask
                }
            }
        }
    }
}
