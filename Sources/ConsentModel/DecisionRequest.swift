/// The circumstances of a request beyond who, what and which data.
public struct RequestContext: Hashable, Sendable {
    /// ISO 3166-1 alpha-2 or ISO 3166-2 code of where the use happens (`DE`, `US-CA`), or nil.
    public var jurisdiction: String?
    /// A Global Privacy Control signal accompanied the request.
    public var gpc: Bool
    /// A US Privacy (CCPA) opt-out of sale accompanied the request.
    public var uspOptOut: Bool
    /// The channel of the use (`web`, `app`, `email`, …), or nil.
    public var channel: String?
    /// The instant to decide at; nil means now.
    public var at: Timestamp?
    /// The store sequence this decision must see (read-your-writes across daemons); 0: none.
    public var minSequence: UInt64 = 0
    /// The consent signal strings, boxed: most requests carry none, and a request is copied on
    /// the decision path, so their absence costs one nil pointer.
    private var signalStrings: SignalStrings?

    /// A TCF v2 TC string from the site's consent banner; its presence says the TCF applies.
    public var tcString: String? {
        get { signalStrings?.tcString }
        set { updateSignals { $0.tcString = newValue } }
    }
    /// A GPP string.
    public var gppString: String? {
        get { signalStrings?.gppString }
        set { updateSignals { $0.gppString = newValue } }
    }
    /// The GPP sections that apply to the request (OpenRTB `regs.gpp_sid`); empty: every
    /// section the GPP string carries.
    public var gppSectionIds: [UInt32] {
        get { signalStrings?.gppSectionIds ?? [] }
        set { updateSignals { $0.gppSectionIds = newValue } }
    }
    /// A US Privacy string (`1YNN`).
    public var usPrivacy: String? {
        get { signalStrings?.usPrivacy }
        set { updateSignals { $0.usPrivacy = newValue } }
    }
    /// The TCF vendor id asking; nil: the policy set's `tcf_vendor_id`.
    public var tcfVendorId: UInt32? {
        get { signalStrings?.tcfVendorId }
        set { updateSignals { $0.tcfVendorId = newValue } }
    }

    /// Sets every signal field at once (one box, where setting each would make one per field);
    /// empty strings and a vendor 0 are absent, as on the wire.
    public mutating func setSignals(tcString: String, gppString: String, gppSectionIds: [UInt32], usPrivacy: String, tcfVendorId: UInt32) {
        let fields = SignalStrings.Fields(
            tcString: tcString.isEmpty ? nil : tcString, gppString: gppString.isEmpty ? nil : gppString, gppSectionIds: gppSectionIds,
            usPrivacy: usPrivacy.isEmpty ? nil : usPrivacy, tcfVendorId: tcfVendorId == 0 ? nil : tcfVendorId
        )
        signalStrings = fields == SignalStrings.Fields() ? nil : SignalStrings(fields)
    }

    private mutating func updateSignals(_ change: (inout SignalStrings.Fields) -> Void) {
        var fields = signalStrings?.fields ?? SignalStrings.Fields()
        change(&fields)
        signalStrings = fields == SignalStrings.Fields() ? nil : SignalStrings(fields)
    }

    /// The most bytes one signal string may have.
    public static let maximumSignalBytes = 16 << 10
    /// The most GPP section ids a request may name.
    public static let maximumGPPSectionIds = 64
    /// The largest TCF vendor id (the TC string's vendor fields are 16 bits).
    public static let maximumTCFVendorId: UInt32 = 65_535

    /// Whether the request carries any consent signal string.
    public var hasSignalStrings: Bool {
        guard let fields = signalStrings?.fields else { return false }
        return fields.tcString != nil || fields.gppString != nil || fields.usPrivacy != nil
    }

    /// The most bytes a channel name may have.
    public static let maximumChannelBytes = 64

    /// Whether `bytes` may name a channel: 1–64 bytes of UTF-8 without control characters
    /// (anything else denies the request as `INVALID_REQUEST`). One context is shared by every
    /// item of a batch, so its values are bounded before any item looks them up.
    public static func isValidChannel(_ channel: String) -> Bool {
        channel.utf8.count <= maximumChannelBytes && Identifier.isValid(channel)
    }

    /// Creates a context; every field defaults to absent.
    public init(jurisdiction: String? = nil, gpc: Bool = false, uspOptOut: Bool = false, channel: String? = nil, at: Timestamp? = nil) {
        self.jurisdiction = jurisdiction
        self.gpc = gpc
        self.uspOptOut = uspOptOut
        self.channel = channel
        self.at = at
    }
}

/// May `purpose` use `dataCategory` for `subject`, in `context`?
public struct DecisionRequest: Hashable, Sendable {
    /// The data subject's opaque id.
    public var subject: String
    /// A purpose key.
    public var purpose: String
    /// A data category key.
    public var dataCategory: String
    /// Where, when, and with which signals.
    public var context: RequestContext

    /// Creates a request.
    public init(subject: String, purpose: String, dataCategory: String, context: RequestContext = RequestContext()) {
        self.subject = subject
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.context = context
    }

    /// Subject ids are identifiers in the sense of `Identifier` (1–256 bytes of UTF-8, no
    /// control characters), compared byte for byte.
    @inlinable
    public static func isValidSubject(_ subject: String) -> Bool { Identifier.isValid(subject) }
}

/// The one rule for the opaque identifiers that come from outside — subject ids and
/// idempotency keys: valid UTF-8, 1–256 bytes, no control characters (C0 U+0000–U+001F,
/// DEL U+007F, C1 U+0080–U+009F). Two identifiers are the same only if their bytes are equal:
/// they are never normalised, case-folded or trimmed.
public enum Identifier {
    /// The most bytes an identifier may have.
    public static let maximumBytes = 256

    /// What is wrong with `subject` as a subject id, as every refusal says it (`subject_id …`,
    /// the wire field's name), or nil when it is valid: the daemon's methods, the store and the
    /// CLI all refuse an invalid subject with this text.
    public static func subjectProblem(_ subject: String) -> String? {
        problem(subject).map { "subject_id \($0)" }
    }

    /// What is wrong with `text` as an identifier, or nil when it is valid.
    /// `maximum` is the field's own limit where it is tighter than `maximumBytes`.
    public static func problem(_ text: String, maximum: Int = maximumBytes) -> String? {
        var copy = text
        return copy.withUTF8 { problem(bytes: UnsafeRawBufferPointer($0), maximum: maximum) }
    }

    /// What is wrong with `bytes` as an identifier, or nil when they are valid.
    public static func problem(bytes: UnsafeRawBufferPointer, maximum: Int = maximumBytes) -> String? {
        guard bytes.count >= 1, bytes.count <= maximum else {
            return "must be 1 to \(maximum) bytes of UTF-8 (got \(bytes.count) bytes)"
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x80 {
                guard byte >= 0x20, byte != 0x7F else { return "must not contain control characters (byte 0x\(hex(byte)) at offset \(index))" }
                index += 1
                continue
            }
            // Well-formed UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
            let length: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch byte {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: return "is not valid UTF-8 (byte 0x\(hex(byte)) at offset \(index))"
            }
            guard index + length <= bytes.count else { return "is not valid UTF-8 (truncated sequence at offset \(index))" }
            for k in 1..<length {
                let next = bytes[index + k]
                let (lo, hi) = k == 1 ? (lower, upper) : (UInt8(0x80), UInt8(0xBF))
                guard next >= lo, next <= hi else { return "is not valid UTF-8 (byte 0x\(hex(next)) at offset \(index + k))" }
            }
            // C1 controls U+0080–U+009F are encoded C2 80 – C2 9F.
            if byte == 0xC2, bytes[index + 1] <= 0x9F {
                return "must not contain control characters (U+00\(hex(bytes[index + 1])) at offset \(index))"
            }
            index += length
        }
        return nil
    }

    /// Whether `bytes` are a valid identifier made of printable ASCII only (0x20–0x7E): what the
    /// allocation-free paths answer themselves; anything else goes to the general path, which
    /// holds every error message.
    @inlinable @inline(__always)
    public static func isPrintableASCII(bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 1, bytes.count <= maximumBytes else { return false }
        for byte in bytes where byte < 0x20 || byte >= 0x7F { return false }
        return true
    }

    /// Whether `text` is a valid identifier.
    @inlinable
    public static func isValid(_ text: String) -> Bool { problem(text) == nil }

    /// Whether `bytes` are a valid identifier.
    @inlinable
    public static func isValid(bytes: UnsafeRawBufferPointer) -> Bool { problem(bytes: bytes) == nil }

    /// `text` as an error message may show a value from outside: quoted, at most `maximumBytes`
    /// of its UTF-8 (cut at a character boundary, "…" marking the cut), and every scalar that is
    /// not printable ASCII escaped as `\u{…}` — so a message can neither grow with its input nor
    /// carry control characters, bidirectional overrides or look-alike letters to a terminal or log.
    public static func excerpt(_ text: String, maximumBytes: Int = 16) -> String {
        var shown = "\""
        var used = 0
        for scalar in text.unicodeScalars {
            used += UTF8.width(scalar)
            if used > maximumBytes { return shown + "\"…" }
            switch scalar.value {
            case 0x22: shown += "\\\""
            case 0x5C: shown += "\\\\"
            case 0x20...0x7E: shown.unicodeScalars.append(scalar)
            default: shown += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return shown + "\""
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
    }
}

/// A request's consent signal strings, immutable and shared (see `RequestContext.signalStrings`).
final class SignalStrings: Hashable, Sendable {
    struct Fields: Hashable, Sendable {
        var tcString: String?
        var gppString: String?
        var gppSectionIds: [UInt32] = []
        var usPrivacy: String?
        var tcfVendorId: UInt32?
    }

    let fields: Fields
    init(_ fields: Fields) { self.fields = fields }

    var tcString: String? { fields.tcString }
    var gppString: String? { fields.gppString }
    var gppSectionIds: [UInt32] { fields.gppSectionIds }
    var usPrivacy: String? { fields.usPrivacy }
    var tcfVendorId: UInt32? { fields.tcfVendorId }

    static func == (lhs: SignalStrings, rhs: SignalStrings) -> Bool { lhs.fields == rhs.fields }
    func hash(into hasher: inout Hasher) { hasher.combine(fields) }
}
