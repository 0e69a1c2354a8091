/// Cheap checks of a `Request` frame's shape before anything is materialised from it: how many
/// items a CheckBatch carries, how many records a RecordConsent carries, whether it holds groups
/// (no consentd.v1 message has one, so they can only be unknown fields). A frame of 1 MiB can hold
/// hundreds of thousands of empty items; counting them first means an over-limit request is
/// refused without building (and keeping) an object per item.
///
/// The walk reads with `FastWireReader`, whose varints are SwiftProtobuf's, so a frame the
/// decoder accepts is never one the scan gives up on.
public enum RequestScan {
    /// What the scan found.
    public struct Shape: Equatable, Sendable {
        /// The request id (0 when absent).
        public var id: UInt64 = 0
        /// "CheckBatch" or "RecordConsent" when the frame holds one, else nil.
        public var method: String?
        /// Items or records, counted over every occurrence of the method field.
        public var count = 0
        /// The frame holds a group (wire type 3 or 4) at the top two levels.
        public var hasGroup = false
    }

    /// The shape of a `Request` frame; nil when it cannot be walked (truncated, a length past the
    /// end: the decoder refuses it too).
    public static func shape(_ bytes: UnsafeRawBufferPointer) -> Shape? {
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var shape = Shape()
        while reader.position < reader.end {
            guard let key = reader.varint() else { return nil }
            let field = key >> 3, wire = key & 7
            if wire == 3 || wire == 4 { shape.hasGroup = true; return shape }
            if field == 1 && wire == 0 {
                guard let id = reader.varint() else { return nil }
                shape.id = id
                continue
            }
            // Request.check_batch = 3 (items = 1); Request.record_consent = 5 (records = 1).
            guard wire == 2, field == 3 || field == 5 else {
                guard reader.skip(wire: Int(wire)) else { return nil }
                continue
            }
            guard let range = reader.lengthDelimited() else { return nil }
            var inner = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
            var count = 0
            while inner.position < inner.end {
                guard let innerKey = inner.varint() else { return nil }
                let innerWire = innerKey & 7
                if innerWire == 3 || innerWire == 4 { shape.hasGroup = true; return shape }
                guard inner.skip(wire: Int(innerWire)) else { return nil }
                if innerKey == 1 << 3 | 2 { count += 1 }
            }
            // A message field may come in several occurrences (they merge): the counts add up.
            shape.method = field == 3 ? "CheckBatch" : "RecordConsent"
            shape.count += count
        }
        return shape
    }
}
