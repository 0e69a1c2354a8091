/// The fields of the GPP US sections (US national and the state sections), each a 2-bit value:
/// 0 not applicable, 1 yes (notice given / opted out / consent withheld, per the field), 2 no,
/// 3 undefined. Lists (SensitiveDataProcessing, KnownChildSensitiveDataConsents) hold one 2-bit
/// value per position.
public enum USField: Int, CaseIterable, Sendable {
    case sharingNotice
    case saleOptOutNotice
    case sharingOptOutNotice
    case targetedAdvertisingOptOutNotice
    case sensitiveDataProcessingOptOutNotice
    case sensitiveDataLimitUseNotice
    case saleOptOut
    case sharingOptOut
    case targetedAdvertisingOptOut
    case sensitiveDataProcessing
    case knownChildSensitiveDataConsents
    case personalDataConsents
    case mspaCoveredTransaction
    case mspaOptOutOptionMode
    case mspaServiceProviderMode

    /// The name in `consentctl signals decode` output: the specification's name in snake_case.
    public var key: String {
        switch self {
        case .sharingNotice: "sharing_notice"
        case .saleOptOutNotice: "sale_opt_out_notice"
        case .sharingOptOutNotice: "sharing_opt_out_notice"
        case .targetedAdvertisingOptOutNotice: "targeted_advertising_opt_out_notice"
        case .sensitiveDataProcessingOptOutNotice: "sensitive_data_processing_opt_out_notice"
        case .sensitiveDataLimitUseNotice: "sensitive_data_limit_use_notice"
        case .saleOptOut: "sale_opt_out"
        case .sharingOptOut: "sharing_opt_out"
        case .targetedAdvertisingOptOut: "targeted_advertising_opt_out"
        case .sensitiveDataProcessing: "sensitive_data_processing"
        case .knownChildSensitiveDataConsents: "known_child_sensitive_data_consents"
        case .personalDataConsents: "personal_data_consents"
        case .mspaCoveredTransaction: "mspa_covered_transaction"
        case .mspaOptOutOptionMode: "mspa_opt_out_option_mode"
        case .mspaServiceProviderMode: "mspa_service_provider_mode"
        }
    }

    /// The specification's field name, for error messages and explanations.
    public var specificationName: StaticString {
        switch self {
        case .sharingNotice: "SharingNotice"
        case .saleOptOutNotice: "SaleOptOutNotice"
        case .sharingOptOutNotice: "SharingOptOutNotice"
        case .targetedAdvertisingOptOutNotice: "TargetedAdvertisingOptOutNotice"
        case .sensitiveDataProcessingOptOutNotice: "SensitiveDataProcessingOptOutNotice"
        case .sensitiveDataLimitUseNotice: "SensitiveDataLimitUseNotice"
        case .saleOptOut: "SaleOptOut"
        case .sharingOptOut: "SharingOptOut"
        case .targetedAdvertisingOptOut: "TargetedAdvertisingOptOut"
        case .sensitiveDataProcessing: "SensitiveDataProcessing"
        case .knownChildSensitiveDataConsents: "KnownChildSensitiveDataConsents"
        case .personalDataConsents: "PersonalDataConsents"
        case .mspaCoveredTransaction: "MspaCoveredTransaction"
        case .mspaOptOutOptionMode: "MspaOptOutOptionMode"
        case .mspaServiceProviderMode: "MspaServiceProviderMode"
        }
    }

    /// Whether the field is a list (reported as an integer array, whatever its length).
    public var isList: Bool { self == .sensitiveDataProcessing || self == .knownChildSensitiveDataConsents }
}

/// The bit layout of one US section: after a 6-bit Version, its fields in order, each
/// `count` 2-bit values. The one home of these layouts; decoding, reports and tests read them here.
public struct USSectionLayout: Sendable {
    public let sectionId: Int
    /// The GPP section name (`usnat`, `usca`, …).
    public let name: StaticString
    public let gpcName: StaticString
    public let fields: [(field: USField, count: Int)]
    /// Whether the section may carry a GPC subsection.
    public let hasGPC: Bool
    /// The versions this layout is read for.
    public let versions: ClosedRange<Int>

    public var coreBits: Int { fields.reduce(6) { $0 + 2 * $1.count } }

    /// Bit offset of `field`'s first value, and its count; nil when the section lacks it.
    @inline(__always)
    public func offset(of field: USField) -> (offset: Int, count: Int)? {
        var offset = 6
        for entry in fields {
            if entry.field == field { return (offset, entry.count) }
            offset &+= 2 &* entry.count
        }
        return nil
    }

    static func layout(_ id: Int, _ name: StaticString, _ gpcName: StaticString, gpc: Bool, versions: ClosedRange<Int> = 1...1, _ fields: [(USField, Int)]) -> USSectionLayout {
        USSectionLayout(sectionId: id, name: name, gpcName: gpcName, fields: fields.map { (field: $0.0, count: $0.1) }, hasGPC: gpc, versions: versions)
    }

    /// US national, the 2023 layout (12 sensitive-data positions, 2 known-child positions): 60 bits.
    public static let usNatV1 = layout(7, "usnat", "usnat GPC subsection", gpc: true, versions: 1...2, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.sharingOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1),
        (.sensitiveDataProcessingOptOutNotice, 1), (.sensitiveDataLimitUseNotice, 1), (.saleOptOut, 1), (.sharingOptOut, 1),
        (.targetedAdvertisingOptOut, 1), (.sensitiveDataProcessing, 12), (.knownChildSensitiveDataConsents, 2),
        (.personalDataConsents, 1), (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    /// US national, the 2024 layout (16 sensitive-data positions, 3 known-child positions): 70 bits.
    public static let usNatV2 = layout(7, "usnat", "usnat GPC subsection", gpc: true, versions: 1...2, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.sharingOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1),
        (.sensitiveDataProcessingOptOutNotice, 1), (.sensitiveDataLimitUseNotice, 1), (.saleOptOut, 1), (.sharingOptOut, 1),
        (.targetedAdvertisingOptOut, 1), (.sensitiveDataProcessing, 16), (.knownChildSensitiveDataConsents, 3),
        (.personalDataConsents, 1), (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    public static let usCA = layout(8, "usca", "usca GPC subsection", gpc: true, [
        (.saleOptOutNotice, 1), (.sharingOptOutNotice, 1), (.sensitiveDataLimitUseNotice, 1), (.saleOptOut, 1), (.sharingOptOut, 1),
        (.sensitiveDataProcessing, 9), (.knownChildSensitiveDataConsents, 2), (.personalDataConsents, 1),
        (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    public static let usVA = layout(9, "usva", "usva GPC subsection", gpc: false, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1), (.saleOptOut, 1), (.targetedAdvertisingOptOut, 1),
        (.sensitiveDataProcessing, 8), (.knownChildSensitiveDataConsents, 1),
        (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    public static let usCO = layout(10, "usco", "usco GPC subsection", gpc: true, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1), (.saleOptOut, 1), (.targetedAdvertisingOptOut, 1),
        (.sensitiveDataProcessing, 7), (.knownChildSensitiveDataConsents, 1),
        (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    public static let usUT = layout(11, "usut", "usut GPC subsection", gpc: false, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1), (.sensitiveDataProcessingOptOutNotice, 1),
        (.saleOptOut, 1), (.targetedAdvertisingOptOut, 1), (.sensitiveDataProcessing, 8), (.knownChildSensitiveDataConsents, 1),
        (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])
    public static let usCT = layout(12, "usct", "usct GPC subsection", gpc: true, [
        (.sharingNotice, 1), (.saleOptOutNotice, 1), (.targetedAdvertisingOptOutNotice, 1), (.saleOptOut, 1), (.targetedAdvertisingOptOut, 1),
        (.sensitiveDataProcessing, 8), (.knownChildSensitiveDataConsents, 3),
        (.mspaCoveredTransaction, 1), (.mspaOptOutOptionMode, 1), (.mspaServiceProviderMode, 1),
    ])

    /// Every US section layout a data category's `gpp_sensitive_data` can name a position in
    /// (usnat in its 16/3 layout: the 12/2 layout's positions are its first twelve).
    public static let sensitiveDataSections: [USSectionLayout] = [usNatV2, usCA, usVA, usCO, usUT, usCT]

    /// The layout for a state section id (8…12); usnat (7) is chosen by length, see `USSection`.
    static func state(_ id: Int) -> USSectionLayout? {
        switch id {
        case 8: usCA
        case 9: usVA
        case 10: usCO
        case 11: usUT
        case 12: usCT
        default: nil
        }
    }
}

/// One GPP US section (id 7…12), read in place: its core subsection and, where the section has
/// one and the string carries it, the GPC subsection (SubsectionType 1, then one bit).
public struct USSection {
    public let layout: USSectionLayout
    let core: BitReader
    public let version: Int
    /// The GPC subsection's bit; nil when the string carries no GPC subsection.
    public let gpc: Bool?

    /// Parses a section's text (`core[.gpc]`) for section `id` (7…12), as a GPP string's parse
    /// checks it.
    public init(section id: Int, parsing bytes: UnsafeRawBufferPointer) throws(SignalError) {
        try self.init(id: id, parsing: bytes, acceptingAnyVersion: false)
    }

    /// Parses a section's text (`core[.gpc]`) for section `id` (7…12).
    /// `acceptingAnyVersion` reads a version this decoder does not know with the known layout:
    /// only for the reference suites' vectors that use arbitrary versions, never for decisions.
    init(id: Int, parsing bytes: UnsafeRawBufferPointer, acceptingAnyVersion: Bool = false) throws(SignalError) {
        var coreEnd = bytes.count
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: ".") {
            coreEnd = index
            break
        }
        let coreBytes = UnsafeRawBufferPointer(rebasing: bytes[0..<coreEnd])
        let chosen: USSectionLayout
        if id == 7 {
            // As the IAB reference libraries do: 10 or 11 characters (60 or 66 bits) is the
            // 12/2 layout, anything else the 16/3 layout. The Version field does not decide it.
            chosen = coreBytes.count == 10 || coreBytes.count == 11 ? .usNatV1 : .usNatV2
        } else {
            guard let state = USSectionLayout.state(id) else { preconditionFailure("not a US section id: \(id)") }
            chosen = state
        }
        layout = chosen
        var reader = try BitReader(coreBytes, signal: .gpp, segment: chosen.name)
        version = try reader.readInt(6, "Version")
        guard chosen.versions.contains(version) || acceptingAnyVersion else {
            throw reader.error("Version", .unsupportedVersion(version), at: 0)
        }
        for entry in chosen.fields {
            try reader.skip(2 &* entry.count, entry.field.specificationName)
        }
        core = reader
        guard coreEnd < bytes.count else {
            gpc = nil
            return
        }
        var subsection = try BitReader(UnsafeRawBufferPointer(rebasing: bytes[(coreEnd &+ 1)...]), signal: .gpp, segment: chosen.gpcName)
        guard chosen.hasGPC else {
            throw subsection.error("SubsectionType", .unexpectedSegment(Int(subsection.peek(at: 0, width: min(2, subsection.bitCount)))), at: 0)
        }
        let type = try subsection.readInt(2, "SubsectionType")
        guard type == 1 else { throw subsection.error("SubsectionType", .unexpectedSegment(type), at: 0) }
        gpc = try subsection.readBool("Gpc")
    }

    /// The value of a single-valued field, or position `index` (0-based) of a list; nil when
    /// the section has no such field or position (a 12/2 US-national string has no sensitive-data
    /// position 13: not applicable).
    @inline(__always)
    public func value(_ field: USField, at index: Int = 0) -> Int? {
        guard let (offset, count) = layout.offset(of: field), index >= 0, index < count else { return nil }
        return Int(truncatingIfNeeded: core.peek(at: offset &+ 2 &* index, width: 2))
    }

    /// The positions of list `field` (bit i: position i + 1, the first 32) whose value is `value`,
    /// with one lookup of the field's place.
    public func positions(of field: USField, equalTo value: Int) -> UInt32 {
        guard let (offset, count) = layout.offset(of: field) else { return 0 }
        var mask: UInt32 = 0
        for index in 0..<min(count, 32) where core.peek(at: offset &+ 2 &* index, width: 2) == UInt64(truncatingIfNeeded: value) {
            mask |= 1 << UInt32(index)
        }
        return mask
    }

    /// The section opts out of sale or sharing: SaleOptOut or SharingOptOut is 1, or its GPC
    /// subsection is set (the one reading of it for decisions and for syncing into the store).
    public var optsOutOfSaleOrSharing: Bool {
        value(.saleOptOut) == 1 || value(.sharingOptOut) == 1 || gpc == true
    }

    /// How many values `field` has in this section (0 when it has none).
    @inline(__always)
    public func count(of field: USField) -> Int { layout.offset(of: field)?.count ?? 0 }
}
