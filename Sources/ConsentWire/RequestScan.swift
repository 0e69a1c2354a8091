/// Cheap checks of a `Request` frame's shape before anything is materialised from it: how many
/// items a CheckBatch carries, how many records a RecordConsent carries. A frame of 1 MiB can
/// hold hundreds of thousands of empty items; counting them first means an over-limit request
/// is refused without building (and keeping) an object per item.
public enum RequestScan {
    /// The number of repeated entries a request carries: CheckBatch items (`check_batch.items`)
    /// or RecordConsent records (`record_consent.records`), counted on the wire; nil when the
    /// frame is neither or cannot be walked (the decoder then reports it).
    public static func repeatedEntries(_ bytes: UnsafeRawBufferPointer) -> (id: UInt64, method: String, count: Int)? {
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var result: (String, Int)?
        var id: UInt64 = 0
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return nil }
            if field == 1 && wire == 0 {
                guard let value = reader.varint() else { return nil }
                id = value
                continue
            }
            // Request.check_batch = 3 (items = 1); Request.record_consent = 5 (records = 1).
            guard wire == 2, field == 3 || field == 5 else {
                guard reader.skip(wire: wire) else { return nil }
                continue
            }
            guard let range = reader.lengthDelimited() else { return nil }
            var inner = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
            var count = 0
            while inner.hasMore {
                guard let (innerField, innerWire) = inner.tag(), inner.skip(wire: innerWire) else { return nil }
                if innerField == 1 && innerWire == 2 { count += 1 }
            }
            // A message field may come in several occurrences (they merge): the counts add up.
            result = (field == 3 ? "CheckBatch" : "RecordConsent", (result?.1 ?? 0) + count)
        }
        return result.map { (id, $0.0, $0.1) }
    }
}
