import ConsentModel

/// Reads and writes consent records as JSON Lines.
public enum JSONLines {
    /// Parses one line (a flat JSON object) into a record.
    public static func record(from line: UnsafeRawBufferPointer, lineNumber: Int) throws -> ConsentRecord {
        var parser = FlatJSONParser(bytes: line, line: lineNumber)
        return try RecordFields.record(try parser.object(), line: lineNumber)
    }

    /// Parses one line into a record.
    public static func record(from line: String, lineNumber: Int) throws -> ConsentRecord {
        var copy = line
        return try copy.withUTF8 { try record(from: UnsafeRawBufferPointer($0), lineNumber: lineNumber) }
    }

    /// One record as a JSON object on one line (no trailing newline).
    public static func line(for record: ConsentRecord) -> String {
        var out = record.sequence > 0 ? "{\"sequence\":\(record.sequence),\"subject\":" : "{\"subject\":"
        appendQuoted(record.subject, to: &out)
        out += ",\"purpose\":"
        appendQuoted(record.purpose, to: &out)
        if let data = record.dataCategory { out += ",\"data\":"; appendQuoted(data, to: &out) }
        out += ",\"choice\":\"\(record.choice)\",\"at\":\"\(record.recordedAt)\""
        if let expires = record.expiresAt { out += ",\"expires\":\"\(expires)\"" }
        out += ",\"basis\":\"\(record.legalBasis)\",\"source\":"
        appendQuoted(record.source, to: &out)
        if let notice = record.noticeVersion { out += ",\"notice_version\":\(notice)" }
        if let jurisdiction = record.jurisdiction { out += ",\"jurisdiction\":"; appendQuoted(jurisdiction, to: &out) }
        if let evidence = record.evidence { out += ",\"evidence\":"; appendQuoted(evidence, to: &out) }
        out += "}"
        return out
    }

    static func appendQuoted(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// A small, strict parser for one flat JSON object (string, number, boolean and null values).
struct FlatJSONParser {
    let bytes: UnsafeRawBufferPointer
    let line: Int
    var position = 0

    init(bytes: UnsafeRawBufferPointer, line: Int) {
        self.bytes = bytes
        self.line = line
    }

    func fail(_ message: String) -> RecordLineError {
        RecordLineError(line: line, message: "invalid JSON at column \(position + 1): \(message)")
    }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0D, 0x0A].contains(bytes[position]) { position += 1 }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipSpace()
        guard position < bytes.count, bytes[position] == byte else { throw fail("expected \(what)") }
        position += 1
    }

    mutating func object() throws -> [String: JSONScalar] {
        try expect(UInt8(ascii: "{"), "'{'")
        var fields: [String: JSONScalar] = [:]
        skipSpace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                skipSpace()
                let key = try string()
                try expect(UInt8(ascii: ":"), "':' after a key")
                let value = try scalar()
                if fields.updateValue(value, forKey: key) != nil { throw fail("duplicate key '\(key)'") }
                skipSpace()
                guard position < bytes.count else { throw fail("unterminated object") }
                if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                if bytes[position] == UInt8(ascii: "}") { position += 1; break }
                throw fail("expected ',' or '}'")
            }
        }
        skipSpace()
        guard position == bytes.count else { throw fail("unexpected text after the object") }
        return fields
    }

    mutating func scalar() throws -> JSONScalar {
        skipSpace()
        guard position < bytes.count else { throw fail("missing value") }
        switch bytes[position] {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        case UInt8(ascii: "{"), UInt8(ascii: "["): throw fail("nested objects and arrays are not allowed in a consent record")
        default: throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count,
              memcmpBytes(bytes.baseAddress! + position, UnsafeRawPointer(word.utf8Start), count) else { throw fail("invalid literal") }
        position += count
    }

    mutating func number() throws -> Double {
        let start = position
        while position < bytes.count, let c = Optional(bytes[position]),
              (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            position += 1
        }
        guard let value = Double(String(decoding: bytes[start..<position], as: UTF8.self)) else { throw fail("invalid number") }
        return value
    }

    mutating func string() throws -> String {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        position += 1
        let start = position
        // Fast path: no escapes.
        while position < bytes.count, bytes[position] != UInt8(ascii: "\""), bytes[position] != UInt8(ascii: "\\") {
            guard bytes[position] >= 0x20 else { throw fail("control character in a string") }
            position += 1
        }
        guard position < bytes.count else { throw fail("unterminated string") }
        if bytes[position] == UInt8(ascii: "\"") {
            let value = String(decoding: bytes[start..<position], as: UTF8.self)
            position += 1
            return value
        }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: String(decoding: bytes[start..<position], as: UTF8.self).unicodeScalars)
        var utf8: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { position += 1; break }
            if byte == UInt8(ascii: "\\") {
                if !utf8.isEmpty { scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars); utf8 = [] }
                position += 1
                guard position < bytes.count else { throw fail("unterminated escape") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    scalars.append(scalar)
                default: throw fail("invalid escape")
                }
            } else {
                guard byte >= 0x20 else { throw fail("control character in a string") }
                utf8.append(byte)
                position += 1
            }
        }
        if !utf8.isEmpty { scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars) }
        return String(scalars)
    }

    mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            let digit: UInt32
            switch c {
            case 48...57: digit = UInt32(c - 48)
            case 65...70: digit = UInt32(c - 55)
            case 97...102: digit = UInt32(c - 87)
            default: throw fail("invalid \\u escape")
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }
}

@inline(__always)
func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    for index in 0..<count where a.load(fromByteOffset: index, as: UInt8.self) != b.load(fromByteOffset: index, as: UInt8.self) { return false }
    return true
}
