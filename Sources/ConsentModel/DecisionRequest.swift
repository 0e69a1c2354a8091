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

    /// Subject ids are 1–256 bytes of UTF-8.
    public static func isValidSubject(_ subject: String) -> Bool {
        let count = subject.utf8.count
        return count >= 1 && count <= 256
    }
}
