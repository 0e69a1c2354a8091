import ConsentModel

/// The file formats consent records are imported from and exported to.
public enum RecordFormat: String, Sendable, CaseIterable {
    /// JSON Lines: one object per line, keys as in policy-test records.
    case jsonl
    /// CSV with a header row naming the columns.
    case csv

    /// The format a file name suggests (`.csv` → CSV, anything else → JSON Lines).
    public static func guess(_ path: String) -> RecordFormat {
        path.lowercased().hasSuffix(".csv") ? .csv : .jsonl
    }

    /// Column / key names, in export order.
    public static let fields = ["sequence", "subject", "purpose", "data", "choice", "at", "expires", "basis", "source", "notice_version", "jurisdiction", "evidence"]
}

/// Why one line of an import file was rejected.
public struct RecordLineError: Error, CustomStringConvertible, Sendable {
    /// 1-based line number in the file.
    public var line: Int
    /// What is wrong.
    public var message: String

    public var description: String { "line \(line): \(message)" }
}

/// Builds a `ConsentRecord` from named string/number fields, with one message per problem.
enum RecordFields {
    static func record(_ fields: [String: JSONScalar], line: Int) throws -> ConsentRecord {
        func fail(_ message: String) -> RecordLineError { RecordLineError(line: line, message: message) }
        for key in fields.keys where !RecordFormat.fields.contains(key) && key != "stored_at" {
            throw fail("unknown key '\(key)' (known: \(RecordFormat.fields.joined(separator: ", ")))")
        }
        func string(_ key: String, required: Bool = false) throws -> String? {
            switch fields[key] {
            case let .string(value)?: return value.isEmpty && !required ? nil : value
            case .null?, nil:
                if required { throw fail("missing '\(key)'") }
                return nil
            default: throw fail("'\(key)' must be a string")
            }
        }
        func time(_ key: String, required: Bool = false) throws -> Timestamp? {
            guard let text = try string(key, required: required) else { return nil }
            guard let value = Timestamp(rfc3339: text) else { throw fail("'\(key)' is not an RFC 3339 time: \(text)") }
            return value
        }
        let subject = try string("subject", required: true)!
        let purpose = try string("purpose", required: true)!
        let choiceText = try string("choice", required: true)!
        guard let choice = Choice(name: choiceText) else { throw fail("choice must be grant or deny, not '\(choiceText)'") }
        var record = ConsentRecord(subject: subject, purpose: purpose, dataCategory: try string("data"), choice: choice, recordedAt: try time("at", required: true)!)
        record.expiresAt = try time("expires")
        if let basis = try string("basis") {
            guard let parsed = LegalBasis(name: basis) else { throw fail("unknown legal basis '\(basis)'") }
            record.legalBasis = parsed
        }
        record.source = try string("source") ?? "import"
        switch fields["notice_version"] {
        case let .number(value)?:
            guard let version = UInt32(exactly: value) else { throw fail("notice_version must be a whole number from 0 to \(UInt32.max)") }
            record.noticeVersion = version
        case let .string(text)? where !text.isEmpty:
            guard let version = UInt32(text) else { throw fail("notice_version must be a whole number, not '\(text)'") }
            record.noticeVersion = version
        case .null?, nil, .string?: break
        default: throw fail("notice_version must be a whole number")
        }
        record.jurisdiction = try string("jurisdiction")
        record.evidence = try string("evidence")
        do { try StoreRules.validate(record) } catch let error as StoreError { throw fail(error.message) }
        return record
    }
}

/// A scalar JSON value (the record formats have no nesting).
enum JSONScalar: Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
}
