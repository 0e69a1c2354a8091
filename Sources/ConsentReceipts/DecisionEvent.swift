import ConsentModel
import PolicyEngine

/// One decision reported to a caller, as the counters, the metrics and the receipts consume it
/// (the daemon's `RequestProcessor.decided`): what was asked, when, what was decided, and from
/// which store sequence. A Check makes one, a CheckBatch one per item, a ListUses one per use it
/// reports. It lives beside the receipt encoder, which reads it directly (no restated copy).
///
/// The allocation-free paths describe the request by its bytes (views into the frame); the
/// general path by its decoded strings. Neither is copied unless a receipt is written.
package struct DecisionEvent {
    package enum Asked {
        case bytes(AskedFields)
        case strings(subject: String, purpose: String, dataCategory: String, jurisdiction: String?, channel: String?)
    }

    /// Which request made the decision (a receipt's `kind`).
    package enum Kind {
        case check, batch, listUses

        var name: StaticString {
            switch self {
            case .check: "check"
            case .batch: "batch"
            case .listUses: "list_uses"
            }
        }
    }

    package var asked: Asked
    package var gpc: Bool
    package var uspOptOut: Bool
    /// The instant the request asked to decide at, if it gave one.
    package var requestedAt: Timestamp?
    /// When the decision was made; nil: now (read only if a receipt needs it).
    package var decidedAt: Timestamp?
    package var decision: Decision
    /// The consent-store sequence the decision read.
    package var sequence: UInt64
    package var kind: Kind

    @inlinable
    package init(
        asked: Asked, gpc: Bool, uspOptOut: Bool, requestedAt: Timestamp?, decidedAt: Timestamp?,
        decision: Decision, sequence: UInt64, kind: Kind
    ) {
        self.asked = asked
        self.gpc = gpc
        self.uspOptOut = uspOptOut
        self.requestedAt = requestedAt
        self.decidedAt = decidedAt
        self.decision = decision
        self.sequence = sequence
        self.kind = kind
    }
}

/// The asked fields as views of bytes, borrowed from the request for the time of encoding.
package struct AskedFields {
    package var subject: UnsafeRawBufferPointer
    package var purpose: UnsafeRawBufferPointer
    package var dataCategory: UnsafeRawBufferPointer
    package var jurisdiction: UnsafeRawBufferPointer?
    package var channel: UnsafeRawBufferPointer?

    @inlinable
    package init(
        subject: UnsafeRawBufferPointer, purpose: UnsafeRawBufferPointer, dataCategory: UnsafeRawBufferPointer,
        jurisdiction: UnsafeRawBufferPointer?, channel: UnsafeRawBufferPointer?
    ) {
        self.subject = subject
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.jurisdiction = jurisdiction
        self.channel = channel
    }

    /// The most bytes of one field (subject, keys, jurisdiction, channel) a receipt holds; a
    /// longer value (only invalid requests carry one) is replaced by a short marker, so one
    /// oversized request cannot make an oversized receipt — and costs nothing per batch item.
    static let maximumFieldBytes = 256

    var hasOversizedField: Bool {
        let limit = Self.maximumFieldBytes
        return subject.count > limit || purpose.count > limit || dataCategory.count > limit
            || (jurisdiction?.count ?? 0) > limit || (channel?.count ?? 0) > limit
    }

    /// `U+0001 truncated: N bytes` for a field over the limit; the field itself otherwise. The
    /// marker starts with a control character, which no valid subject, key, jurisdiction or
    /// channel holds, so a replay decides the receipt exactly as the daemon did: the value was
    /// invalid (or unknown) then, and the marker is invalid (or unknown) now.
    static func capped(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        guard bytes.count > maximumFieldBytes else { return Array(bytes) }
        return Array("\u{1}truncated: \(bytes.count) bytes".utf8)
    }

    /// These fields with each one capped, held in one buffer for the duration of `body`.
    func capped(_ body: (AskedFields) -> Void) {
        Self.holding([subject, purpose, dataCategory].map(Self.capped), jurisdiction.map(Self.capped), channel.map(Self.capped), body)
    }

    /// Fields held in one buffer for the duration of `body` (the general path's strings, or
    /// capped copies).
    static func holding(_ required: [[UInt8]], _ jurisdiction: [UInt8]?, _ channel: [UInt8]?, _ body: (AskedFields) -> Void) {
        var joined: [UInt8] = []
        var ends: [Int] = []
        for field in required + [jurisdiction ?? [], channel ?? []] {
            joined += field
            ends.append(joined.count)
        }
        joined.withUnsafeBytes { raw in
            func field(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: raw[(i == 0 ? 0 : ends[i - 1])..<ends[i]]) }
            body(AskedFields(
                subject: field(0), purpose: field(1), dataCategory: field(2),
                jurisdiction: jurisdiction == nil ? nil : field(3), channel: channel == nil ? nil : field(4)
            ))
        }
    }
}
