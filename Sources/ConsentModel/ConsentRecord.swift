/// One choice by one subject, as stored and shown (the cold-path form, with strings).
///
/// Records are append-only history: a withdrawal is a newer `deny` record.
public struct ConsentRecord: Hashable, Sendable {
    /// The most bytes a record's `source` may have (the store refuses longer ones).
    public static let maximumSourceBytes = 64
    /// The most bytes a record's `evidence` may have (the store refuses longer ones).
    public static let maximumEvidenceBytes = 4096

    /// Store-assigned, monotonically increasing; 0 before the record is stored.
    public var sequence: UInt64
    /// The data subject's opaque id (1–256 bytes of UTF-8).
    public var subject: String
    /// The purpose scope: this key and all its descendants.
    public var purpose: String
    /// The data scope, or nil for all data.
    public var dataCategory: String?
    /// Grant or deny.
    public var choice: Choice
    /// When the customer made the choice.
    public var recordedAt: Timestamp
    /// When the choice stops counting (exclusive), if ever.
    public var expiresAt: Timestamp?
    /// The legal basis recorded with the choice (default: consent).
    public var legalBasis: LegalBasis
    /// Where the choice came from: `web`, `app`, `import`, `gpc`, `tcf`, …
    public var source: String
    /// The version of the notice the customer was shown, if known.
    public var noticeVersion: UInt32?
    /// The jurisdiction the choice was captured in, if known.
    public var jurisdiction: String?
    /// An opaque reference to the evidence (form submission id, TC string, …).
    public var evidence: String?

    /// Creates a record; every optional field defaults to absent.
    public init(
        sequence: UInt64 = 0, subject: String, purpose: String, dataCategory: String? = nil,
        choice: Choice, recordedAt: Timestamp, expiresAt: Timestamp? = nil,
        legalBasis: LegalBasis = .consent, source: String = "unknown", noticeVersion: UInt32? = nil,
        jurisdiction: String? = nil, evidence: String? = nil
    ) {
        self.sequence = sequence
        self.subject = subject
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.choice = choice
        self.recordedAt = recordedAt
        self.expiresAt = expiresAt
        self.legalBasis = legalBasis
        self.source = source
        self.noticeVersion = noticeVersion
        self.jurisdiction = jurisdiction
        self.evidence = evidence
    }

    /// The fixed-width form used by the in-memory index and the evaluator.
    public func compact(in vocabulary: Vocabulary) -> CompactRecord {
        CompactRecord(
            purpose: vocabulary.purposes.intern(purpose),
            dataCategory: dataCategory.map { vocabulary.dataCategories.intern($0) } ?? CompactRecord.allData,
            choice: choice,
            legalBasis: legalBasis,
            recordedAt: recordedAt,
            expiresAt: expiresAt ?? .distantFuture,
            sequence: sequence,
            source: vocabulary.sources.intern(source),
            noticeVersion: noticeVersion ?? CompactRecord.noNotice
        )
    }
}

/// A consent record in fixed-width form: interned keys, integer times, no references.
///
/// This is what the in-memory index stores per subject and what the evaluator reads.
public struct CompactRecord: Hashable, Sendable {
    /// The `dataCategory` value meaning "all data".
    public static let allData = UInt32.max
    /// The `noticeVersion` value meaning "unknown".
    public static let noNotice = UInt32.max
    /// The `source` of a record that a TC string on the request implies (never stored).
    public static let tcfSource = UInt32.max
    /// The source name of `tcfSource`.
    public static let tcfSourceName = "tcf"

    /// When the customer made the choice.
    public var recordedAt: Timestamp
    /// When the choice stops counting (exclusive); `Timestamp.distantFuture` when it never does.
    public var expiresAt: Timestamp
    /// Store sequence of the record.
    public var sequence: UInt64
    /// Purpose scope, an id in `Vocabulary.purposes`.
    public var purpose: UInt32
    /// Data scope, an id in `Vocabulary.dataCategories`, or `allData`.
    public var dataCategory: UInt32
    /// Source, an id in `Vocabulary.sources`.
    public var source: UInt32
    /// Notice version shown, or `noNotice`.
    public var noticeVersion: UInt32
    /// Grant or deny.
    public var choice: Choice
    /// Legal basis recorded with the choice.
    public var legalBasis: LegalBasis

    /// Creates a compact record.
    public init(
        purpose: UInt32, dataCategory: UInt32 = CompactRecord.allData, choice: Choice,
        legalBasis: LegalBasis = .consent, recordedAt: Timestamp, expiresAt: Timestamp = .distantFuture,
        sequence: UInt64 = 0, source: UInt32 = 0, noticeVersion: UInt32 = CompactRecord.noNotice
    ) {
        self.recordedAt = recordedAt
        self.expiresAt = expiresAt
        self.sequence = sequence
        self.purpose = purpose
        self.dataCategory = dataCategory
        self.source = source
        self.noticeVersion = noticeVersion
        self.choice = choice
        self.legalBasis = legalBasis
    }

    /// Whether the record counts at `instant`: recorded at or before it and not yet expired
    /// (a record is expired at T when `expiresAt <= T`).
    @inlinable
    public func isValid(at instant: Timestamp) -> Bool {
        recordedAt <= instant && instant < expiresAt
    }
}

/// A consent management platform's signal string for one customer, to be stored as the consent
/// records it implies (`PolicySet.records(implying:now:)`; `RecordConsent`'s `signal`). Exactly
/// one of the strings is given.
public struct SignalConsent: Hashable, Sendable {
    public var subject: String
    public var tcString: String?
    public var gppString: String?
    public var usPrivacy: String?
    /// The vendor a TC string is read for; nil: the policy set's `tcf_vendor_id`.
    public var tcfVendorId: UInt32?
    public var jurisdiction: String?
    /// The version of the operator's notice the CMP showed, recorded with the records (rules'
    /// `min_notice_version` apply to them as to any stored record).
    public var noticeVersion: UInt32?

    public init(
        subject: String, tcString: String? = nil, gppString: String? = nil, usPrivacy: String? = nil, tcfVendorId: UInt32? = nil,
        jurisdiction: String? = nil, noticeVersion: UInt32? = nil
    ) {
        self.noticeVersion = noticeVersion
        self.subject = subject
        self.tcString = tcString
        self.gppString = gppString
        self.usPrivacy = usPrivacy
        self.tcfVendorId = tcfVendorId
        self.jurisdiction = jurisdiction
    }
}
