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
        /// The general path's decoded request; the context's signal strings are read from it.
        case strings(subject: String, purpose: String, dataCategory: String, context: RequestContext)
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
    /// The companions of the context's signal strings (the strings are `asked`'s).
    package var signals = EventSignals()

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

/// What a receipt needs of a request's signals besides the strings: the applicable GPP sections
/// and the vendor asked for. A decision depends on the sections only through their mask, whether
/// any id was given, and whether more than the limit were (`RequestContext.maximumGPPSectionIds`),
/// so that is what is kept.
package struct EventSignals: Equatable {
    /// Bit i: section i was named.
    package var gppSectionMask: UInt64 = 0
    /// How many ids `gpp_sid` held (duplicates and ids of 64 and above included).
    package var gppSectionCount = 0
    /// The vendor asked for; 0: the policy set's.
    package var tcfVendorId: UInt32 = 0

    @inlinable
    package init(gppSectionMask: UInt64 = 0, gppSectionCount: Int = 0, tcfVendorId: UInt32 = 0) {
        self.gppSectionMask = gppSectionMask
        self.gppSectionCount = gppSectionCount
        self.tcfVendorId = tcfVendorId
    }

    /// The companions of a decoded context's signals.
    package init(_ context: RequestContext) {
        let ids = context.gppSectionIds
        self.init(gppSectionMask: ids.isEmpty ? 0 : SignalAssessment.sectionMask(ids), gppSectionCount: ids.count, tcfVendorId: context.tcfVendorId ?? 0)
    }

    /// The section ids a replay gives to decide as the daemon did: the mask's ids, then ids no
    /// section has (64) up to the count given.
    package var replayedSectionIds: [UInt32] {
        var ids = (0..<64).filter { gppSectionMask & (1 << UInt64($0)) != 0 }.map(UInt32.init)
        if gppSectionCount > ids.count { ids += Array(repeating: 64, count: gppSectionCount - ids.count) }
        return ids
    }
}

/// The asked fields as views of bytes, borrowed from the request for the time of encoding.
package struct AskedFields {
    package var subject: UnsafeRawBufferPointer
    package var purpose: UnsafeRawBufferPointer
    package var dataCategory: UnsafeRawBufferPointer
    package var jurisdiction: UnsafeRawBufferPointer?
    package var channel: UnsafeRawBufferPointer?
    /// The context's signal strings (nil: absent).
    package var tcString: UnsafeRawBufferPointer?
    package var gppString: UnsafeRawBufferPointer?
    package var usPrivacy: UnsafeRawBufferPointer?

    @inlinable
    package init(
        subject: UnsafeRawBufferPointer, purpose: UnsafeRawBufferPointer, dataCategory: UnsafeRawBufferPointer,
        jurisdiction: UnsafeRawBufferPointer?, channel: UnsafeRawBufferPointer?,
        tcString: UnsafeRawBufferPointer? = nil, gppString: UnsafeRawBufferPointer? = nil, usPrivacy: UnsafeRawBufferPointer? = nil
    ) {
        self.subject = subject
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.jurisdiction = jurisdiction
        self.channel = channel
        self.tcString = tcString
        self.gppString = gppString
        self.usPrivacy = usPrivacy
    }

    /// Whether the request carries a signal string.
    var hasSignalStrings: Bool { tcString != nil || gppString != nil || usPrivacy != nil }

    /// The most bytes of one field (subject, keys, jurisdiction, channel) a receipt holds; a
    /// longer value (only invalid requests carry one) is replaced by a short marker, so one
    /// oversized request cannot make an oversized receipt — and costs nothing per batch item.
    static let maximumFieldBytes = 256

    /// The most bytes of a signal string a receipt holds: the most a request may carry
    /// (a longer one is malformed, and so is its marker).
    static let maximumSignalBytes = RequestContext.maximumSignalBytes

    /// Whether a subject, key, jurisdiction or channel is over its limit (the signal strings are
    /// written once per request, in the signals line, capped there).
    var hasOversizedField: Bool {
        let limit = Self.maximumFieldBytes
        return subject.count > limit || purpose.count > limit || dataCategory.count > limit
            || (jurisdiction?.count ?? 0) > limit || (channel?.count ?? 0) > limit
    }

    /// `U+0001 truncated: N bytes` for a field over `limit`; the field itself otherwise. The
    /// marker starts with a control character, which no valid subject, key, jurisdiction,
    /// channel or signal string holds, so a replay decides the receipt exactly as the daemon
    /// did: the value was invalid (or unknown, or unreadable) then, and the marker is now.
    static func capped(_ bytes: UnsafeRawBufferPointer, limit: Int = maximumFieldBytes) -> [UInt8] {
        guard bytes.count > limit else { return Array(bytes) }
        return Array("\u{1}truncated: \(bytes.count) bytes".utf8)
    }

    /// These fields with each one capped, held in one buffer for the duration of `body` (the
    /// signal strings pass unchanged).
    func capped(_ body: (AskedFields) -> Void) {
        var copy = self
        Self.holding([subject, purpose, dataCategory].map { Self.capped($0) }, [jurisdiction.map { Self.capped($0) }, channel.map { Self.capped($0) }]) { cappedFields in
            copy.subject = cappedFields.subject
            copy.purpose = cappedFields.purpose
            copy.dataCategory = cappedFields.dataCategory
            copy.jurisdiction = cappedFields.jurisdiction
            copy.channel = cappedFields.channel
            body(copy)
        }
    }

    /// Fields held in one buffer for the duration of `body` (the general path's strings, or
    /// capped copies): the subject, purpose and data category, then the optional jurisdiction,
    /// channel, TC string, GPP string and US Privacy string.
    static func holding(_ required: [[UInt8]], _ optional: [[UInt8]?], _ body: (AskedFields) -> Void) {
        var joined: [UInt8] = []
        var ends: [Int] = []
        for field in required + optional.map({ $0 ?? [] }) {
            joined += field
            ends.append(joined.count)
        }
        joined.withUnsafeBytes { raw in
            func field(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: raw[(i == 0 ? 0 : ends[i - 1])..<ends[i]]) }
            func present(_ i: Int) -> UnsafeRawBufferPointer? { i - 3 < optional.count && optional[i - 3] != nil ? field(i) : nil }
            body(AskedFields(
                subject: field(0), purpose: field(1), dataCategory: field(2), jurisdiction: present(3), channel: present(4),
                tcString: present(5), gppString: present(6), usPrivacy: present(7)
            ))
        }
    }
}
