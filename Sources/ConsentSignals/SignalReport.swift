import ConsentModel

/// What a signal string says, as a tree of named values: the form of `consentctl signals decode`
/// (text and JSON) and of the vector tests. Built from the in-place views, so the bit layouts live
/// only in those; building a report allocates freely and is not on the decision path.
public indirect enum SignalValue: Equatable, Sendable {
    case int(Int)
    case bool(Bool)
    case string(String)
    case ints([Int])
    case object([SignalField])
    case list([SignalValue])

    /// The value under `key` in an object.
    public subscript(key: String) -> SignalValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.key == key }?.value
    }
}

/// One named value of a report object.
public struct SignalField: Equatable, Sendable {
    public let key: String
    public let value: SignalValue

    public init(_ key: String, _ value: SignalValue) {
        self.key = key
        self.value = value
    }
}

/// Decodes signal strings into reports.
public enum SignalReport {
    /// The kind a string looks like: four characters starting with a digit are US Privacy, a
    /// string starting with `D` (header type 3) is GPP, anything else is read as a TC string.
    public static func guessKind(_ string: String) -> SignalKind {
        let utf8 = Array(string.utf8)
        if utf8.count == 4, let first = utf8.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) { return .usp }
        if utf8.first == UInt8(ascii: "D") { return .gpp }
        return .tcf
    }

    /// Decodes `string` as `kind` (guessed when nil). The report starts with `kind`.
    public static func decode(_ string: String, as kind: SignalKind? = nil) throws(SignalError) -> SignalValue {
        let kind = kind ?? guessKind(string)
        var bytes = Array(string.utf8)
        let result: Result<[SignalField], SignalError> = bytes.withUnsafeMutableBytes { raw in
            let buffer = UnsafeRawBufferPointer(raw)
            do throws(SignalError) {
                switch kind {
                case .tcf: return .success(tcf(try TCFString(parsing: buffer)))
                case .usp: return .success(usp(try USPrivacyString(parsing: buffer)))
                case .gpp: return .success(gpp(try GPPString(parsing: buffer)))
                }
            } catch {
                return .failure(error)
            }
        }
        return .object([SignalField("kind", .string(kind.rawValue))] + (try result.get()))
    }

    /// Decodes one GPP section's text (`id` 2, 6 or 7…12) on its own, as `consentctl signals
    /// decode --section` does; the report has the section's fields.
    public static func decodeSection(_ text: String, id: Int) throws(SignalError) -> SignalValue {
        try decodeSection(text, id: id, acceptingAnyVersion: false)
    }

    static func decodeSection(_ text: String, id: Int, acceptingAnyVersion: Bool) throws(SignalError) -> SignalValue {
        var bytes = Array(text.utf8)
        let result: Result<[SignalField], SignalError> = bytes.withUnsafeMutableBytes { raw in
            let buffer = UnsafeRawBufferPointer(raw)
            do throws(SignalError) {
                switch id {
                case GPPSectionId.tcfEuV2: return .success(tcf(try TCFString(parsing: buffer, signal: .gpp)))
                case GPPSectionId.usPrivacy: return .success(usp(try USPrivacyString(parsing: buffer, signal: .gpp)))
                case GPPSectionId.usNational, GPPSectionId.usStates:
                    return .success(usSection(try USSection(id: id, parsing: buffer, acceptingAnyVersion: acceptingAnyVersion)))
                default:
                    return .failure(SignalError(.gpp, segment: "section", field: "(section id)", bitOffset: 0, problem: .invalidValue(id)))
                }
            } catch {
                var located = error
                located.gppSection = id
                return .failure(located)
            }
        }
        return .object(try result.get())
    }

    /// Decodes a GPP header on its own (no sections): `version` and `section_ids`.
    public static func decodeGPPHeader(_ text: String) throws(SignalError) -> SignalValue {
        var bytes = Array(text.utf8)
        let result: Result<GPPHeader, SignalError> = bytes.withUnsafeMutableBytes { raw in
            do throws(SignalError) { return .success(try GPPHeader(parsing: UnsafeRawBufferPointer(raw))) } catch { return .failure(error) }
        }
        let header = try result.get()
        var ids: [Int] = []
        header.forEachId { id in
            ids.append(id)
            return ids.count <= 4096
        }
        return .object([SignalField("version", .int(header.version)), SignalField("section_ids", .ints(ids))])
    }

    static func letters(_ code: Int) -> String {
        let first = UInt8(truncatingIfNeeded: (code >> 6) & 63) &+ UInt8(ascii: "A")
        let second = UInt8(truncatingIfNeeded: code & 63) &+ UInt8(ascii: "A")
        return String(decoding: [first, second], as: UTF8.self)
    }

    static func time(_ deciseconds: UInt64) -> String {
        Timestamp(microseconds: Int64(deciseconds) &* 100_000).rfc3339(fraction: .trimmed)
    }

    static func ids(width: Int, _ test: (Int) -> Bool) -> SignalValue {
        .ints((1...max(width, 1)).filter { $0 <= width && test($0) })
    }

    /// The TCF fields, by the specification's names in snake_case.
    public static func tcf(_ tc: TCFString) -> [SignalField] {
        var fields: [SignalField] = [
            SignalField("version", .int(tc.version)),
            SignalField("created", .string(time(tc.createdDeciseconds))),
            SignalField("last_updated", .string(time(tc.lastUpdatedDeciseconds))),
            SignalField("cmp_id", .int(tc.cmpId)),
            SignalField("cmp_version", .int(tc.cmpVersion)),
            SignalField("consent_screen", .int(tc.consentScreen)),
            SignalField("consent_language", .string(letters(tc.consentLanguageCode))),
            SignalField("vendor_list_version", .int(tc.vendorListVersion)),
            SignalField("policy_version", .int(tc.policyVersion)),
            SignalField("is_service_specific", .bool(tc.isServiceSpecific)),
            SignalField("use_non_standard_texts", .bool(tc.useNonStandardTexts)),
            SignalField("special_feature_opt_ins", ids(width: 12, tc.specialFeatureOptIn)),
            SignalField("purpose_consents", ids(width: 24, tc.purposeConsent)),
            SignalField("purpose_legitimate_interests", ids(width: 24, tc.purposeLegitimateInterest)),
            SignalField("purpose_one_treatment", .bool(tc.purposeOneTreatment)),
            SignalField("publisher_cc", .string(letters(tc.publisherCountryCode))),
            SignalField("vendor_consents", .ints(tc.vendorConsents.ids)),
            SignalField("vendor_legitimate_interests", .ints(tc.vendorLegitimateInterests.ids)),
            SignalField("publisher_restrictions", .list(restrictions(tc.publisherRestrictions))),
        ]
        if let disclosed = tc.disclosedVendors { fields.append(SignalField("disclosed_vendors", .ints(disclosed.ids))) }
        if let allowed = tc.allowedVendors { fields.append(SignalField("allowed_vendors", .ints(allowed.ids))) }
        if let publisher = tc.publisherTC {
            fields.append(SignalField("publisher_tc", .object([
                SignalField("purpose_consents", ids(width: 24, publisher.purposeConsent)),
                SignalField("purpose_legitimate_interests", ids(width: 24, publisher.purposeLegitimateInterest)),
                SignalField("custom_purpose_consents", ids(width: publisher.customPurposeCount, publisher.customPurposeConsent)),
                SignalField("custom_purpose_legitimate_interests", ids(width: publisher.customPurposeCount, publisher.customPurposeLegitimateInterest)),
            ])))
        }
        return fields
    }

    /// One entry per (purpose, type) in the order first seen, with the union of its vendors
    /// (ranges merged first: the cost is bounded by the ids, not the ranges' lengths).
    static func restrictions(_ restrictions: PublisherRestrictions) -> [SignalValue] {
        var order: [Int] = []
        var ranges: [Int: [ClosedRange<Int>]] = [:]
        restrictions.walk(restriction: { purpose, type in
            let key = purpose << 2 | type
            if ranges[key] == nil {
                order.append(key)
                ranges[key] = []
            }
        }, range: { purpose, type, first, last in
            ranges[purpose << 2 | type]!.append(first...last)
        })
        return order.map { key in
            .object([
                SignalField("purpose", .int(key >> 2)),
                SignalField("type", .int(key & 3)),
                SignalField("vendors", .ints(VendorSet.merged(ranges[key]!).flatMap { Array($0) })),
            ])
        }
    }

    public static func usp(_ usp: USPrivacyString) -> [SignalField] {
        [
            SignalField("version", .int(usp.version)),
            SignalField("notice", .string(String(decoding: [usp.notice], as: UTF8.self))),
            SignalField("opt_out_sale", .string(String(decoding: [usp.optOutSale], as: UTF8.self))),
            SignalField("lspa", .string(String(decoding: [usp.lspa], as: UTF8.self))),
        ]
    }

    public static func usSection(_ section: USSection) -> [SignalField] {
        var fields = [SignalField("version", .int(section.version))]
        for entry in section.layout.fields {
            if entry.field.isList {
                fields.append(SignalField(entry.field.key, .ints((0..<section.count(of: entry.field)).map { section.value(entry.field, at: $0) ?? 0 })))
            } else {
                fields.append(SignalField(entry.field.key, .int(section.value(entry.field) ?? 0)))
            }
        }
        if let gpc = section.gpc { fields.append(SignalField("gpc", .bool(gpc))) }
        return fields
    }

    public static func gpp(_ gpp: GPPString) -> [SignalField] {
        var ids: [Int] = []
        var sections: [SignalField] = []
        gpp.forEachSection { id, text in
            ids.append(id)
            let name = GPPSectionId.name(id)
            var value: [SignalField]
            switch id {
            case GPPSectionId.tcfEuV2:
                value = (try? TCFString(parsing: text, signal: .gpp)).map(tcf) ?? []
            case GPPSectionId.usPrivacy:
                value = (try? USPrivacyString(parsing: text, signal: .gpp)).map(usp) ?? []
            case GPPSectionId.usNational, GPPSectionId.usStates:
                value = (try? USSection(id: id, parsing: text)).map(usSection) ?? []
            default:
                value = [
                    SignalField("decoded", .bool(false)),
                    SignalField("text", .string(String(decoding: text, as: UTF8.self))),
                ]
            }
            sections.append(SignalField(name, .object(value)))
            return true
        }
        return [
            SignalField("version", .int(gpp.version)),
            SignalField("section_ids", .ints(ids)),
            SignalField("sections", .object(sections)),
        ]
    }
}

extension SignalValue: Encodable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .int(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .ints(let values):
            var container = encoder.singleValueContainer()
            try container.encode(values)
        case .list(let values):
            var container = encoder.unkeyedContainer()
            for value in values { try container.encode(value) }
        case .object(let fields):
            var container = encoder.container(keyedBy: Key.self)
            for field in fields { try container.encode(field.value, forKey: Key(stringValue: field.key)) }
        }
    }
}

extension SignalValue {
    /// The report as indented `key: value` lines.
    public func text(indent: String = "") -> String {
        var out = ""
        render(into: &out, indent: indent)
        return out
    }

    private func render(into out: inout String, indent: String) {
        guard case .object(let fields) = self else {
            out += indent + inline + "\n"
            return
        }
        for field in fields {
            switch field.value {
            case .object(let inner) where !inner.isEmpty:
                out += "\(indent)\(field.key):\n"
                field.value.render(into: &out, indent: indent + "  ")
            case .list(let items) where !items.isEmpty:
                out += "\(indent)\(field.key):\n"
                for item in items {
                    if case .object(let inner) = item {
                        out += "\(indent)  - " + inner.map { "\($0.key): \($0.value.inline)" }.joined(separator: ", ") + "\n"
                    } else {
                        out += "\(indent)  - \(item.inline)\n"
                    }
                }
            default:
                out += "\(indent)\(field.key): \(field.value.inline)\n"
            }
        }
    }

    var inline: String {
        switch self {
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .string(let value): return value.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } ? value.debugDescription : value
        case .ints(let values): return "[" + values.map(String.init).joined(separator: ", ") + "]"
        case .list(let values): return "[" + values.map(\.inline).joined(separator: ", ") + "]"
        case .object(let fields): return "{" + fields.map { "\($0.key): \($0.value.inline)" }.joined(separator: ", ") + "}"
        }
    }
}
