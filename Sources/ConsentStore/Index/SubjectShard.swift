import ConsentModel

/// An immutable open-addressing table from subject id bytes to that subject's records.
///
/// Everything lives in two buffers: 16-byte slots, and one array of compact records in which
/// each subject's entry is its id bytes (padded to whole records) followed by its records. A
/// lookup therefore touches one slot and one contiguous entry — two cache misses on a large
/// index — and the records come back as a slice of the same array, with no allocation.
final class SubjectShard: Sendable {
    struct Slot {
        /// High 32 bits of the subject hash, to skip most byte comparisons.
        var tag: UInt32 = 0
        /// 0 marks an empty slot (subject ids are at least one byte).
        var keyLength: UInt16 = 0
        var entryStart: UInt32 = 0
        var count: UInt32 = 0
    }

    static let recordSize = MemoryLayout<CompactRecord>.stride

    @inline(__always)
    static func keyChunks(_ length: Int) -> Int { (length + recordSize - 1) / recordSize }

    let slots: [Slot]
    let mask: Int
    let storage: [CompactRecord]
    let subjectCount: Int
    let recordCount: Int

    static let empty = SubjectShard(entries: [])

    /// Raw pointers into this shard's buffers. Valid while the shard lives: `slots` and
    /// `storage` are immutable arrays that are never mutated after `init`, so their buffers
    /// never move.
    struct View: @unchecked Sendable {
        let slots: UnsafePointer<Slot>
        let mask: Int
        let storage: UnsafePointer<CompactRecord>

        @inline(__always)
        func records(of key: UnsafeRawBufferPointer, hash: UInt64) -> UnsafeBufferPointer<CompactRecord> {
            let tag = UInt32(truncatingIfNeeded: hash >> 32)
            var position = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[position]
                if slot.keyLength == 0 { return UnsafeBufferPointer(start: nil, count: 0) }
                let entry = storage + Int(slot.entryStart)
                if slot.tag == tag && Int(slot.keyLength) == key.count
                    && bytesEqual(UnsafeRawPointer(entry), key.baseAddress!, key.count) {
                    return UnsafeBufferPointer(start: entry + SubjectShard.keyChunks(Int(slot.keyLength)), count: Int(slot.count))
                }
                position = (position + 1) & mask
            }
        }
    }

    var view: View {
        View(slots: slots.withUnsafeBufferPointer { $0.baseAddress! }, mask: mask,
             storage: storage.withUnsafeBufferPointer { $0.baseAddress ?? UnsafePointer(bitPattern: 8)! })
    }

    /// Builds a shard from (subject bytes, hash, records) entries with distinct subjects;
    /// entries with no records are left out.
    init(entries: [(key: ArraySlice<UInt8>, hash: UInt64, records: ArraySlice<CompactRecord>)]) {
        let live = entries.filter { !$0.records.isEmpty }
        var capacity = 4
        while capacity < live.count * 2 { capacity <<= 1 }
        var slots = [Slot](repeating: Slot(), count: live.isEmpty ? 1 : capacity)
        let mask = live.isEmpty ? 0 : capacity - 1
        let total = live.reduce(0) { $0 + SubjectShard.keyChunks($1.key.count) + $1.records.count }
        let filler = CompactRecord(purpose: 0, choice: .grant, recordedAt: Timestamp(microseconds: 0))
        var storage = [CompactRecord](repeating: filler, count: total)
        var cursor = 0
        var records = 0
        storage.withUnsafeMutableBufferPointer { buffer in
            for entry in live {
                var position = Int(truncatingIfNeeded: entry.hash) & mask
                while slots[position].keyLength != 0 { position = (position + 1) & mask }
                slots[position] = Slot(tag: UInt32(truncatingIfNeeded: entry.hash >> 32), keyLength: UInt16(entry.key.count),
                                       entryStart: UInt32(cursor), count: UInt32(entry.records.count))
                let chunks = SubjectShard.keyChunks(entry.key.count)
                let raw = UnsafeMutableRawPointer(buffer.baseAddress! + cursor)
                raw.initializeMemory(as: UInt8.self, repeating: 0, count: chunks * SubjectShard.recordSize)
                entry.key.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                cursor += chunks
                for record in entry.records {
                    buffer[cursor] = record
                    cursor += 1
                }
                records += entry.records.count
            }
        }
        self.slots = slots
        self.mask = mask
        self.storage = storage
        self.subjectCount = live.count
        self.recordCount = records
    }

    /// The slot index holding `key`, if any.
    @inline(__always)
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        var position = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            storage.withUnsafeBytes { bytes in
                while true {
                    let slot = slots[position]
                    if slot.keyLength == 0 { return nil }
                    if slot.tag == tag && Int(slot.keyLength) == key.count
                        && bytesEqual(bytes.baseAddress! + Int(slot.entryStart) * SubjectShard.recordSize, key.baseAddress!, key.count) {
                        return position
                    }
                    position = (position + 1) & mask
                }
            }
        }
    }

    @inline(__always)
    func records(at slotIndex: Int) -> ArraySlice<CompactRecord> {
        let slot = slots[slotIndex]
        let start = Int(slot.entryStart) + SubjectShard.keyChunks(Int(slot.keyLength))
        return storage[start..<start + Int(slot.count)]
    }

    func key(at slotIndex: Int) -> [UInt8] {
        let slot = slots[slotIndex]
        return storage.withUnsafeBytes { bytes in
            Array(bytes[Int(slot.entryStart) * SubjectShard.recordSize..<Int(slot.entryStart) * SubjectShard.recordSize + Int(slot.keyLength)])
        }
    }

    /// Every (subject bytes, hash, records) entry, for rebuilding.
    func entries() -> [(key: ArraySlice<UInt8>, hash: UInt64, records: ArraySlice<CompactRecord>)] {
        var result: [(key: ArraySlice<UInt8>, hash: UInt64, records: ArraySlice<CompactRecord>)] = []
        result.reserveCapacity(subjectCount)
        for index in slots.indices where slots[index].keyLength != 0 {
            let key = key(at: index)
            let hash = key.withUnsafeBytes { ByteHash.hash($0) }
            result.append((key[...], hash, records(at: index)))
        }
        return result
    }

    /// Resident bytes of the shard's buffers (capacity, not count).
    var residentBytes: Int {
        slots.capacity * MemoryLayout<Slot>.stride + storage.capacity * SubjectShard.recordSize
    }
}

@inline(__always)
func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    var index = 0
    while index + 8 <= count {
        if a.loadUnaligned(fromByteOffset: index, as: UInt64.self) != b.loadUnaligned(fromByteOffset: index, as: UInt64.self) { return false }
        index += 8
    }
    while index < count {
        if a.load(fromByteOffset: index, as: UInt8.self) != b.load(fromByteOffset: index, as: UInt8.self) { return false }
        index += 1
    }
    return true
}
