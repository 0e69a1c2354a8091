import ConsentModel

/// The zero-copy reader of the most common request, a plain `Check`: the frame is read straight
/// from the wire format (no message objects, no strings) into byte ranges of the frame.
///
/// Anything unusual — another method, `explain`, an unknown field, a repeated submessage,
/// non-ASCII strings, an out-of-range instant — returns nil, and the daemon's general path
/// (SwiftProtobuf) answers instead, so every error message and normalisation lives in one place.
public struct ParsedCheck: Equatable, Sendable {
    public var id: UInt64 = 0
    public var subject: Range<Int> = 0..<0
    public var purpose: Range<Int> = 0..<0
    public var data: Range<Int> = 0..<0
    public var jurisdiction: Range<Int>?
    public var channel: Range<Int>?
    public var gpc = false
    public var uspOptOut = false
    public var at: Timestamp?
    /// The consent signal strings (`tc_string`, `gpp_string`, `us_privacy`); an empty one is absent.
    public var tcString: Range<Int>?
    public var gppString: Range<Int>?
    public var usPrivacy: Range<Int>?
    /// `gpp_sid` as a mask (bit i: section i; ids of 64 and above name no section this daemon
    /// reads) and how many ids were given.
    public var gppSectionMask: UInt64 = 0
    public var gppSectionCount = 0
    /// `tcf_vendor_id`; 0: the policy set's.
    public var tcfVendorId: UInt32 = 0
    /// `context.min_sequence` (0: none): the caller answers only once its index holds it.
    public var minSequence: UInt64 = 0

    @inlinable
    public init() {}

    /// Whether the context stays within the limits a decision requires (at most 64 `gpp_sid` ids,
    /// a vendor id of at most 65 535); the general path answers the rest with INVALID_REQUEST.
    @inlinable
    public var contextIsWithinLimits: Bool {
        gppSectionCount <= RequestContext.maximumGPPSectionIds && tcfVendorId <= RequestContext.maximumTCFVendorId
    }

    /// Whether the context carries a consent signal string.
    @inlinable
    public var hasSignalStrings: Bool { tcString != nil || gppString != nil || usPrivacy != nil }

    /// Reads a `Request` holding a plain `CheckRequest`; nil for anything else.
    @inlinable
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParsedCheck? {
        var parsed = ParsedCheck()
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var sawCheck = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return nil }
            switch (field, wire) {
            case (1, 0):
                guard let id = reader.varint() else { return nil }
                parsed.id = id
            case (2, 2):
                guard !sawCheck, let range = reader.lengthDelimited(), parsed.parseCheck(bytes, range) else { return nil }
                sawCheck = true
            default:
                return nil
            }
        }
        return sawCheck ? parsed : nil
    }

    @inlinable
    mutating func parseCheck(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var reader = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
        var sawContext = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 2): guard let r = reader.asciiString() else { return false }; subject = r
            case (2, 2): guard let r = reader.asciiString() else { return false }; purpose = r
            case (3, 2): guard let r = reader.asciiString() else { return false }; data = r
            case (4, 2):
                guard !sawContext, let r = reader.lengthDelimited(), parseContext(bytes, r) else { return false }
                sawContext = true
            case (5, 0):
                guard let explain = reader.varint(), explain == 0 else { return false }
            default:
                return false
            }
        }
        return true
    }

    /// Reads a `Context` message at `range` into this value's context fields.
    @inlinable
    public mutating func parseContext(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var reader = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
        var sawAt = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 2): guard let r = reader.asciiString() else { return false }; jurisdiction = r
            case (2, 0): guard let v = reader.varint() else { return false }; gpc = v != 0
            case (3, 2):
                guard !sawAt, let r = reader.lengthDelimited() else { return false }
                sawAt = true
                var inner = FastWireReader(bytes: bytes, start: r.lowerBound, end: r.upperBound)
                var seconds: Int64 = 0
                var nanos: Int64 = 0
                while inner.hasMore {
                    guard let (f, w) = inner.tag(), w == 0, let v = inner.varint() else { return false }
                    if f == 1 { seconds = Int64(bitPattern: v) } else if f == 2 { nanos = Int64(Int32(truncatingIfNeeded: v)) } else { return false }
                }
                // Out of range (or bad nanos): the general path answers with the error.
                guard let valid = Timestamp(seconds: seconds, nanos: Int32(nanos)) else { return false }
                at = valid
            case (4, 0): guard let v = reader.varint() else { return false }; uspOptOut = v != 0
            case (5, 2): guard let r = reader.asciiString() else { return false }; channel = r
            // Signal strings: proto3's last occurrence wins, and an empty one is absent.
            case (6, 2): guard let r = reader.asciiString() else { return false }; tcString = r.isEmpty ? nil : r
            case (7, 2): guard let r = reader.asciiString() else { return false }; gppString = r.isEmpty ? nil : r
            case (9, 2): guard let r = reader.asciiString() else { return false }; usPrivacy = r.isEmpty ? nil : r
            case (8, 0):
                guard let v = reader.varint() else { return false }
                addSectionId(v)
            case (8, 2):
                // Packed, as proto3 writes a repeated scalar; parsers accept both forms.
                guard let r = reader.lengthDelimited() else { return false }
                var packed = FastWireReader(bytes: bytes, start: r.lowerBound, end: r.upperBound)
                while packed.hasMore {
                    guard let v = packed.varint() else { return false }
                    addSectionId(v)
                }
            case (10, 0): guard let v = reader.varint() else { return false }; tcfVendorId = UInt32(truncatingIfNeeded: v)
            case (11, 0): guard let v = reader.varint() else { return false }; minSequence = v
            default: return false
            }
        }
        return true
    }

    /// One `gpp_sid` element, read as protobuf reads a uint32 (the varint truncated).
    @inlinable
    mutating func addSectionId(_ value: UInt64) {
        let id = UInt32(truncatingIfNeeded: value)
        if id < 64 { gppSectionMask |= 1 << UInt64(id) }
        gppSectionCount += 1
    }
}

/// A `Request` holding a plain `CheckBatchRequest`, read straight from the wire: the items as
/// byte ranges, in order. Nil for anything the general path must handle.
public struct ParsedBatch: Sendable {
    public var id: UInt64 = 0
    public var context = ParsedCheck()
    public var items: [(subject: Range<Int>, purpose: Range<Int>, data: Range<Int>)] = []

    public init() {}

    /// Reads the batch; false (decline) for anything unusual, or more than `maximumItems` items
    /// — counted before another is added, so an oversized batch never grows `items`.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, maximumItems: Int) -> Bool {
        // Reused across frames: everything starts over (found by fuzz-frames: a batch without an
        // id was answered with the id of the batch before it).
        id = 0
        items.removeAll(keepingCapacity: true)
        context = ParsedCheck()
        var reader = FastWireReader(bytes: bytes, start: 0, end: bytes.count)
        var sawBatch = false
        while reader.hasMore {
            guard let (field, wire) = reader.tag() else { return false }
            switch (field, wire) {
            case (1, 0):
                guard let value = reader.varint() else { return false }
                id = value
            case (3, 2):
                guard !sawBatch, let range = reader.lengthDelimited() else { return false }
                sawBatch = true
                var batch = FastWireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound)
                var sawContext = false
                while batch.hasMore {
                    guard let (f, w) = batch.tag() else { return false }
                    switch (f, w) {
                    case (1, 2):
                        guard items.count < maximumItems, let itemRange = batch.lengthDelimited() else { return false }
                        var item = FastWireReader(bytes: bytes, start: itemRange.lowerBound, end: itemRange.upperBound)
                        var subject = 0..<0, purpose = 0..<0, data = 0..<0
                        while item.hasMore {
                            guard let (g, x) = item.tag(), x == 2, let r = item.asciiString() else { return false }
                            switch g {
                            case 1: subject = r
                            case 2: purpose = r
                            case 3: data = r
                            default: return false
                            }
                        }
                        items.append((subject, purpose, data))
                    case (2, 2):
                        guard !sawContext, let contextRange = batch.lengthDelimited() else { return false }
                        sawContext = true
                        guard context.parseContext(bytes, contextRange) else { return false }
                    default:
                        return false
                    }
                }
            default:
                return false
            }
        }
        return sawBatch
    }
}
