import ConsentModel

/// Reads and writes consent records as CSV (RFC 4180 quoting, a header row of column names).
public struct CSVRecords {
    /// The columns named by the header, in order.
    public let columns: [String]

    /// Reads the header row; unknown or duplicate column names are an error.
    public init(header: String) throws {
        let names = try CSVRecords.split(header, line: 1).map { $0.trimmingSpaces }
        for name in names where !RecordFormat.fields.contains(name) && name != "stored_at" {
            throw RecordLineError(line: 1, message: "unknown column '\(name)' (known: \(RecordFormat.fields.joined(separator: ", ")))")
        }
        if Set(names).count != names.count { throw RecordLineError(line: 1, message: "a column is named twice") }
        for required in ["subject", "purpose", "choice", "at"] where !names.contains(required) {
            throw RecordLineError(line: 1, message: "missing column '\(required)'")
        }
        columns = names
    }

    /// Parses one data row.
    public func record(from row: String, lineNumber: Int) throws -> ConsentRecord {
        let values = try CSVRecords.split(row, line: lineNumber)
        guard values.count == columns.count else {
            throw RecordLineError(line: lineNumber, message: "\(values.count) fields, but the header names \(columns.count)")
        }
        var fields: [String: JSONScalar] = [:]
        for (name, value) in zip(columns, values) where !value.isEmpty {
            fields[name] = .string(value)
        }
        return try RecordFields.record(fields, line: lineNumber)
    }

    /// Whether a row ends inside a quoted field (so the next line continues it).
    public static func isIncomplete(_ row: String) -> Bool {
        row.utf8.reduce(false) { inside, byte in byte == UInt8(ascii: "\"") ? !inside : inside }
    }

    static func split(_ row: String, line: Int) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = row.unicodeScalars.makeIterator()
        var atFieldStart = true
        while let scalar = iterator.next() {
            if quoted {
                if scalar == "\"" {
                    var lookahead = iterator
                    if lookahead.next() == "\"" { current.unicodeScalars.append("\""); iterator = lookahead } else { quoted = false }
                } else {
                    current.unicodeScalars.append(scalar)
                }
            } else if scalar == "," {
                fields.append(current)
                current = ""
                atFieldStart = true
                continue
            } else if scalar == "\"" && atFieldStart {
                quoted = true
            } else if scalar == "\"" {
                throw RecordLineError(line: line, message: "a quote inside an unquoted field")
            } else if scalar != "\r" {
                current.unicodeScalars.append(scalar)
            }
            atFieldStart = false
        }
        if quoted { throw RecordLineError(line: line, message: "unterminated quoted field") }
        fields.append(current)
        return fields
    }

    /// The header row for `RecordFormat.fields`.
    public static var header: String { RecordFormat.fields.joined(separator: ",") }

    /// One record as a CSV row in `RecordFormat.fields` order.
    public static func row(for record: ConsentRecord) -> String {
        let values: [String] = [
            record.sequence > 0 ? String(record.sequence) : "", record.subject, record.purpose, record.dataCategory ?? "", record.choice.description,
            record.recordedAt.rfc3339, record.expiresAt?.rfc3339 ?? "", record.legalBasis.description, record.source,
            record.noticeVersion.map(String.init) ?? "", record.jurisdiction ?? "", record.evidence ?? "",
        ]
        return values.map(quote).joined(separator: ",")
    }

    static func quote(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }) else { return value }
        return "\"" + value.replacingAll("\"", with: "\"\"") + "\""
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " || scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
