#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCF v2 TC string (v2.2 and v2.3 share the bit layout), read in place.
///
/// Parsing walks the whole string once and checks every structural rule — known version, every
/// field present, every range entry ordered and within MaxVendorId, no repeated or undefined
/// optional segment — then keeps the core fields and the bit positions of the variable parts.
/// Questions such as "does vendor V have consent?" read the bits they need; nothing is expanded
/// into arrays and nothing is allocated. A `TCFString` borrows the bytes it was parsed from and is
/// valid only while they are (see `TCFString.withParsed` for a String).
public struct TCFString {
    public let version: Int
    /// Deciseconds since the Unix epoch, as encoded.
    public let createdDeciseconds: UInt64
    public let lastUpdatedDeciseconds: UInt64
    public let cmpId: Int
    public let cmpVersion: Int
    public let consentScreen: Int
    /// Two 6-bit letters, 0 = "A".
    public let consentLanguageCode: Int
    public let vendorListVersion: Int
    public let policyVersion: Int
    public let isServiceSpecific: Bool
    public let useNonStandardTexts: Bool
    /// Bit i (from the most significant of 12) = special feature i + 1.
    let specialFeatureBits: UInt64
    /// Bit i (from the most significant of 24) = purpose i + 1.
    let purposeConsentBits: UInt64
    let purposeLegitimateInterestBits: UInt64
    public let purposeOneTreatment: Bool
    public let publisherCountryCode: Int
    public let vendorConsents: VendorSet
    public let vendorLegitimateInterests: VendorSet
    public let publisherRestrictions: PublisherRestrictions
    public let disclosedVendors: VendorSet?
    public let allowedVendors: VendorSet?
    public let publisherTC: PublisherTC?

    /// The only TCF version consentd reads (TCF v2.0 through v2.3 all encode 2).
    public static let supportedVersion = 2

    /// Parses `bytes` (the string's UTF-8). Throws the first structural error found.
    /// `signal` names the string in errors (`.gpp` for a GPP string's TCF EU section).
    public init(parsing bytes: UnsafeRawBufferPointer, signal: SignalKind = .tcf) throws(SignalError) {
        var coreEnd = bytes.count
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: ".") {
            coreEnd = index
            break
        }
        var reader = try BitReader(UnsafeRawBufferPointer(rebasing: bytes[0..<coreEnd]), signal: signal, segment: "core segment", allowPadding: true)
        version = try reader.readInt(6, "Version")
        guard version == Self.supportedVersion else {
            throw reader.error("Version", .unsupportedVersion(version), at: 0)
        }
        createdDeciseconds = try reader.read(36, "Created")
        lastUpdatedDeciseconds = try reader.read(36, "LastUpdated")
        cmpId = try reader.readInt(12, "CmpId")
        cmpVersion = try reader.readInt(12, "CmpVersion")
        consentScreen = try reader.readInt(6, "ConsentScreen")
        consentLanguageCode = try Self.letters(&reader, "ConsentLanguage")
        vendorListVersion = try reader.readInt(12, "VendorListVersion")
        policyVersion = try reader.readInt(6, "TcfPolicyVersion")
        isServiceSpecific = try reader.readBool("IsServiceSpecific")
        useNonStandardTexts = try reader.readBool("UseNonStandardTexts")
        specialFeatureBits = try reader.read(12, "SpecialFeatureOptIns")
        purposeConsentBits = try reader.read(24, "PurposesConsent")
        purposeLegitimateInterestBits = try reader.read(24, "PurposesLITransparency")
        purposeOneTreatment = try reader.readBool("PurposeOneTreatment")
        publisherCountryCode = try Self.letters(&reader, "PublisherCC")
        reader.segment = "core segment, vendor consents"
        vendorConsents = try VendorSet(parsing: &reader)
        reader.segment = "core segment, vendor legitimate interests"
        vendorLegitimateInterests = try VendorSet(parsing: &reader)
        reader.segment = "core segment, publisher restrictions"
        publisherRestrictions = try PublisherRestrictions(parsing: &reader)

        var disclosed: VendorSet?
        var allowed: VendorSet?
        var publisher: PublisherTC?
        if coreEnd < bytes.count {
            var start = coreEnd &+ 1
            while true {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: ".") { end &+= 1 }
                var segment = try BitReader(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), signal: signal, segment: "optional segment", allowPadding: true)
                let type = try segment.readInt(3, "SegmentType")
                switch type {
                case 1 where disclosed == nil:
                    segment.segment = "disclosed vendors segment"
                    disclosed = try VendorSet(parsing: &segment)
                case 2 where allowed == nil:
                    segment.segment = "allowed vendors segment"
                    allowed = try VendorSet(parsing: &segment)
                case 3 where publisher == nil:
                    segment.segment = "publisher TC segment"
                    publisher = try PublisherTC(parsing: &segment)
                default:
                    throw segment.error("SegmentType", .unexpectedSegment(type), at: 0)
                }
                if end == bytes.count { break }
                start = end &+ 1
            }
        }
        disclosedVendors = disclosed
        allowedVendors = allowed
        publisherTC = publisher
    }

    /// Two letters, 6 bits each, 0 = "A" … 25 = "Z"; anything above Z is refused.
    static func letters(_ reader: inout BitReader, _ field: StaticString) throws(SignalError) -> Int {
        let at = reader.position
        let code = try reader.readInt(12, field)
        guard code >> 6 <= 25, code & 63 <= 25 else { throw reader.error(field, .invalidValue(code), at: at) }
        return code
    }

    /// Parses a String's UTF-8 in place and runs `body` on the result (which must not escape it).
    public static func withParsed<R>(_ string: String, _ body: (TCFString) throws -> R) throws -> R {
        var copy = string
        return try copy.withUTF8 { utf8 in
            try body(try TCFString(parsing: UnsafeRawBufferPointer(utf8)))
        }
    }

    /// What the string says that a decision for `vendor` needs (see `TCFChoice`), read once for
    /// every purpose a decision, a batch or a sync asks about. Vendor ids start at 1: for 0 (no
    /// vendor known) nothing is granted.
    public func choice(of vendor: Int) -> TCFChoice {
        let known = vendor >= 1
        return TCFChoice(
            lastUpdatedDeciseconds: lastUpdatedDeciseconds, purposeConsentBits: purposeConsentBits, specialFeatureBits: specialFeatureBits,
            vendor: vendor, vendorConsent: known && vendorConsents.contains(vendor),
            notAllowed: known ? publisherRestrictions.purposes(restricting: vendor, type: 0) : 0
        )
    }

    /// Purposes 1…24; anything else has no consent.
    @inline(__always)
    public func purposeConsent(_ purpose: Int) -> Bool { Self.bit(purposeConsentBits, width: 24, id: purpose) }

    @inline(__always)
    public func purposeLegitimateInterest(_ purpose: Int) -> Bool { Self.bit(purposeLegitimateInterestBits, width: 24, id: purpose) }

    /// Special features 1…12.
    @inline(__always)
    public func specialFeatureOptIn(_ feature: Int) -> Bool { Self.bit(specialFeatureBits, width: 12, id: feature) }

    @inline(__always)
    static func bit(_ bits: UInt64, width: Int, id: Int) -> Bool {
        guard id >= 1, id <= width else { return false }
        return (bits >> UInt64(width &- id)) & 1 == 1
    }

    /// Deciseconds to RFC 3339 UTC text happens in the report; decisions compare deciseconds.
    public var lastUpdatedMicroseconds: Int64 { Int64(lastUpdatedDeciseconds) &* 100_000 }
    public var createdMicroseconds: Int64 { Int64(createdDeciseconds) &* 100_000 }
}

/// The last TC string one connection read, kept with its reading: ad requests for one customer
/// carry the same string again and again, and reading a long one checks every range entry. A
/// string byte-for-byte equal to the kept one is not read again. Not thread-safe: one per
/// connection. Only well-formed strings are kept; the copy grows to the longest string seen (at
/// most the request limit), so a steady stream allocates nothing.
public final class TCFStringCache {
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var count = 0
    /// The reading of the kept bytes (it borrows `storage`).
    private var parsed: TCFString?
    /// What the kept string says for the last vendor asked about.
    private var choice: TCFChoice?

    public init() {}
    deinit { storage.deallocate() }

    /// What `bytes` say for `vendor` (as `TCFString(parsing:).choice(of:)`): the kept answer when
    /// `bytes` are the bytes last read and `vendor` the vendor last asked about; else `bytes`
    /// copied and read anew (kept when well formed). Throws what a fresh reading throws.
    public func choice(_ bytes: UnsafeRawBufferPointer, vendor: Int) throws(SignalError) -> TCFChoice {
        if let parsed, count == bytes.count, count > 0, memcmp(storage.baseAddress!, bytes.baseAddress!, count) == 0 {
            if let choice, choice.vendor == vendor { return choice }
            let read = parsed.choice(of: vendor)
            choice = read
            return read
        }
        parsed = nil
        choice = nil
        count = 0
        if storage.count < bytes.count {
            storage.deallocate()
            storage = .allocate(byteCount: max(bytes.count, 2 * storage.count), alignment: 8)
        }
        if bytes.count > 0 { storage.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        let reading = try TCFString(parsing: UnsafeRawBufferPointer(start: storage.baseAddress, count: bytes.count))
        parsed = reading
        count = bytes.count
        let read = reading.choice(of: vendor)
        choice = read
        return read
    }
}

/// What a TC string says that a decision for one vendor needs, as plain values (it borrows
/// nothing, and is small enough to copy freely on the allocation-free path): the purpose
/// consents, special-feature opt-ins and LastUpdated of the string; whether the vendor has vendor
/// consent; the TCF purposes a publisher restriction of type 0 keeps it from.
public struct TCFChoice: Equatable, Sendable {
    public let lastUpdatedDeciseconds: UInt64
    let purposeConsentBits: UInt64
    let specialFeatureBits: UInt64
    /// The vendor asked about (0: none known).
    public let vendor: Int
    public let vendorConsent: Bool
    /// TCF purposes (bit p-1) the vendor may not be used for (publisher restrictions of type 0).
    public let notAllowed: UInt64

    /// Whether the string grants the TCF purposes in `purposes` (bit p-1 for purpose p) to the
    /// vendor: vendor consent, purpose consent for each, no type-0 restriction for any.
    public func grants(purposes: UInt64) -> Bool {
        guard vendorConsent, purposes & notAllowed == 0 else { return false }
        var bits = purposes
        while bits != 0 {
            if !TCFString.bit(purposeConsentBits, width: 24, id: bits.trailingZeroBitCount + 1) { return false }
            bits &= bits - 1
        }
        return true
    }

    /// Special features 1…12.
    @inline(__always)
    public func specialFeatureOptIn(_ feature: Int) -> Bool { TCFString.bit(specialFeatureBits, width: 12, id: feature) }

    public var lastUpdatedMicroseconds: Int64 { Int64(lastUpdatedDeciseconds) &* 100_000 }
}

/// A set of vendor ids as a TC string encodes it: MaxVendorId, then either a bitfield of that
/// many bits or a list of single ids and ranges. Queries read the bits in place.
public struct VendorSet {
    let reader: BitReader
    public let maxVendorId: Int
    public let isRangeEncoded: Bool
    /// First bit of the bitfield, or of the first range entry.
    let start: Int
    let entryCount: Int

    init(parsing reader: inout BitReader) throws(SignalError) {
        maxVendorId = try reader.readInt(16, "MaxVendorId")
        isRangeEncoded = try reader.readBool("IsRangeEncoding")
        if isRangeEncoded {
            entryCount = try reader.readInt(12, "NumEntries")
            start = reader.position
            for _ in 0..<entryCount {
                _ = try RangeEntry.read(&reader, maximum: maxVendorId)
            }
        } else {
            entryCount = 0
            start = reader.position
            try reader.skip(maxVendorId, "BitField")
        }
        self.reader = reader
    }

    /// Whether vendor `id` is in the set.
    @inline(__always)
    public func contains(_ id: Int) -> Bool {
        guard id >= 1, id <= maxVendorId else { return false }
        if !isRangeEncoded { return reader.bit(at: start &+ id &- 1) }
        var position = start
        for _ in 0..<entryCount {
            let entry = RangeEntry.peek(reader, at: &position)
            if entry.first <= id, id <= entry.last { return true }
        }
        return false
    }

    /// Calls `body` with each id in the set (ascending for a bitfield, in entry order for ranges).
    public func forEach(_ body: (Int) -> Void) {
        if !isRangeEncoded {
            for id in stride(from: 1, through: maxVendorId, by: 1) where reader.bit(at: start &+ id &- 1) { body(id) }
            return
        }
        var position = start
        for _ in 0..<entryCount {
            let entry = RangeEntry.peek(reader, at: &position)
            for id in entry.first...entry.last { body(id) }
        }
    }

    /// The ids, sorted and without repeats (for reports and tests, not for decisions). Overlapping
    /// ranges are merged first, so the cost is bounded by the ids (at most 65 535), not by the
    /// sum of the ranges' lengths.
    public var ids: [Int] {
        if !isRangeEncoded {
            var result: [Int] = []
            forEach { result.append($0) }
            return result
        }
        var ranges: [ClosedRange<Int>] = []
        var position = start
        for _ in 0..<entryCount {
            let entry = RangeEntry.peek(reader, at: &position)
            ranges.append(entry.first...entry.last)
        }
        return Self.merged(ranges).flatMap { Array($0) }
    }

    /// Sorted, non-overlapping, non-adjacent ranges covering the same ids.
    static func merged(_ ranges: [ClosedRange<Int>]) -> [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound + 1 {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }
}

/// One entry of a range-encoded vendor list: IsARange, StartOrOnlyVendorId, [EndVendorId].
struct RangeEntry {
    let first: Int
    let last: Int

    /// Reads and checks an entry: ids start at 1, a range's start does not exceed its end, and
    /// no id exceeds `maximum` (MaxVendorId, where the section has one).
    static func read(_ reader: inout BitReader, maximum: Int?) throws(SignalError) -> RangeEntry {
        let isRange = try reader.readBool("IsARange")
        let firstAt = reader.position
        let first = try reader.readInt(16, "StartOrOnlyVendorId")
        guard first >= 1 else { throw reader.error("StartOrOnlyVendorId", .zeroIdentifier, at: firstAt) }
        var last = first
        var lastAt = firstAt
        if isRange {
            lastAt = reader.position
            last = try reader.readInt(16, "EndVendorId")
            guard first <= last else { throw reader.error("EndVendorId", .rangeStartAfterEnd(start: first, end: last), at: lastAt) }
        }
        if let maximum, last > maximum {
            throw reader.error(isRange ? "EndVendorId" : "StartOrOnlyVendorId", .vendorBeyondMaximum(id: last, maximum: maximum), at: lastAt)
        }
        return RangeEntry(first: first, last: last)
    }

    /// Reads an entry already checked by `read`.
    @inline(__always)
    static func peek(_ reader: BitReader, at position: inout Int) -> RangeEntry {
        let isRange = reader.bit(at: position)
        let first = Int(truncatingIfNeeded: reader.peek(at: position &+ 1, width: 16))
        if isRange {
            let last = Int(truncatingIfNeeded: reader.peek(at: position &+ 17, width: 16))
            position &+= 33
            return RangeEntry(first: first, last: last)
        }
        position &+= 17
        return RangeEntry(first: first, last: first)
    }
}

/// The publisher restrictions of a TC string's core segment: for a purpose, a restriction type
/// (0 not allowed, 1 require consent, 2 require legitimate interest, 3 undefined) on a list of vendors.
public struct PublisherRestrictions {
    let reader: BitReader
    let start: Int
    public let count: Int

    init(parsing reader: inout BitReader) throws(SignalError) {
        count = try reader.readInt(12, "NumPubRestrictions")
        start = reader.position
        for _ in 0..<count {
            let purposeAt = reader.position
            let purpose = try reader.readInt(6, "PurposeId")
            guard purpose >= 1 else { throw reader.error("PurposeId", .zeroIdentifier, at: purposeAt) }
            try reader.skip(2, "RestrictionType")
            let entries = try reader.readInt(12, "NumEntries")
            for _ in 0..<entries { _ = try RangeEntry.read(&reader, maximum: nil) }
        }
        self.reader = reader
    }

    /// The one walk over the restrictions: `restriction(purpose, type)` once per restriction (even
    /// one listing no vendors), then `range(purpose, type, first, last)` for each of its entries.
    @inline(__always)
    func walk(restriction: (_ purpose: Int, _ type: Int) -> Void, range: (_ purpose: Int, _ type: Int, _ first: Int, _ last: Int) -> Void) {
        var position = start
        for _ in 0..<count {
            let purpose = Int(truncatingIfNeeded: reader.peek(at: position, width: 6))
            let type = Int(truncatingIfNeeded: reader.peek(at: position &+ 6, width: 2))
            let entries = Int(truncatingIfNeeded: reader.peek(at: position &+ 8, width: 12))
            position &+= 20
            restriction(purpose, type)
            for _ in 0..<entries {
                let entry = RangeEntry.peek(reader, at: &position)
                range(purpose, type, entry.first, entry.last)
            }
        }
    }

    /// Calls `body(purpose, type, firstVendor, lastVendor)` for each range of each restriction, in order.
    public func forEachRange(_ body: (_ purpose: Int, _ type: Int, _ first: Int, _ last: Int) -> Void) {
        walk(restriction: { _, _ in }, range: body)
    }

    /// The purposes (bit p-1 for purpose p, 1…64) on which `vendor` has a restriction of `type`,
    /// in one walk: a decision asks it once per request, not once per purpose or batch item.
    public func purposes(restricting vendor: Int, type: Int) -> UInt64 {
        var mask: UInt64 = 0
        forEachRange { purpose, restrictionType, first, last in
            if restrictionType == type, purpose >= 1, purpose <= 64, first <= vendor, vendor <= last { mask |= 1 << UInt64(purpose &- 1) }
        }
        return mask
    }

    /// The restriction types (bit t set for type t) that apply to `vendor` for `purpose`.
    @inline(__always)
    public func types(purpose: Int, vendor: Int) -> UInt8 {
        var mask: UInt8 = 0
        forEachRange { restrictedPurpose, type, first, last in
            if restrictedPurpose == purpose, first <= vendor, vendor <= last { mask |= 1 << UInt8(type) }
        }
        return mask
    }
}

/// The publisher TC segment: the publisher's own purpose consents and legitimate interests, and
/// its custom purposes.
public struct PublisherTC {
    let purposeConsentBits: UInt64
    let purposeLegitimateInterestBits: UInt64
    public let customPurposeCount: Int
    let customConsentBits: UInt64
    let customLegitimateInterestBits: UInt64

    init(parsing reader: inout BitReader) throws(SignalError) {
        purposeConsentBits = try reader.read(24, "PubPurposesConsent")
        purposeLegitimateInterestBits = try reader.read(24, "PubPurposesLITransparency")
        customPurposeCount = try reader.readInt(6, "NumCustomPurposes")
        customConsentBits = try reader.read(customPurposeCount, "CustomPurposesConsent")
        customLegitimateInterestBits = try reader.read(customPurposeCount, "CustomPurposesLITransparency")
    }

    public func purposeConsent(_ purpose: Int) -> Bool { TCFString.bit(purposeConsentBits, width: 24, id: purpose) }
    public func purposeLegitimateInterest(_ purpose: Int) -> Bool { TCFString.bit(purposeLegitimateInterestBits, width: 24, id: purpose) }
    public func customPurposeConsent(_ purpose: Int) -> Bool { TCFString.bit(customConsentBits, width: customPurposeCount, id: purpose) }
    public func customPurposeLegitimateInterest(_ purpose: Int) -> Bool { TCFString.bit(customLegitimateInterestBits, width: customPurposeCount, id: purpose) }
}
