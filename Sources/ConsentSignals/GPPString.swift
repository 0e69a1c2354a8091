/// GPP section ids and names (IAB GPP, section information). Ids without a decoder here are
/// reported as present and undecoded, never as an error.
public enum GPPSectionId {
    public static let tcfEuV2 = 2
    public static let tcfCaV1 = 5
    public static let usPrivacy = 6
    public static let usNational = 7
    public static let usStates = 8...12

    /// The section's name (`tcfeuv2`, `uspv1`, `usnat`, …), or `section_<id>` for an id GPP has not named.
    public static func name(_ id: Int) -> String {
        switch id {
        case 1: "tcfeuv1"
        case 2: "tcfeuv2"
        case 3: "gppheader"
        case 4: "gppsi"
        case 5: "tcfcav1"
        case 6: "uspv1"
        case 7: "usnat"
        case 8: "usca"
        case 9: "usva"
        case 10: "usco"
        case 11: "usut"
        case 12: "usct"
        case 13: "usfl"
        case 14: "usmt"
        case 15: "usor"
        case 16: "ustx"
        case 17: "usde"
        case 18: "usia"
        case 19: "usne"
        case 20: "usnh"
        case 21: "usnj"
        case 22: "ustn"
        case 23: "usmn"
        default: "section_\(id)"
        }
    }

    /// Whether consentd decodes the section's contents.
    public static func isDecoded(_ id: Int) -> Bool {
        id == tcfEuV2 || id == usPrivacy || id == usNational || usStates.contains(id)
    }
}

/// The header of a GPP v1 string: Type 3, Version 1, then the section ids as a Fibonacci range
/// (NumEntries, then per entry IsRange and one or two Fibonacci offsets: a single id or a range's
/// start counts from the previous entry's last id, a range's end from its start).
public struct GPPHeader {
    let reader: BitReader
    public let version: Int
    let entryCount: Int
    /// Bit position of the first range entry.
    let rangesStart: Int
    /// How many ids the header lists (counted up to `limit` + 1).
    public let listedCount: Int

    public static let type = 3
    public static let supportedVersion = 1

    /// Reads and checks the header (`bytes` is the header alone, without `~`). `limit` stops the
    /// count once it exceeds the sections the string can hold, so a huge range costs nothing.
    public init(parsing bytes: UnsafeRawBufferPointer, limit: Int = Int.max - 1) throws(SignalError) {
        var reader = try BitReader(bytes, signal: .gpp, segment: "header")
        let type = try reader.readInt(6, "Type")
        guard type == Self.type else { throw reader.error("Type", .invalidValue(type), at: 0) }
        version = try reader.readInt(6, "Version")
        guard version == Self.supportedVersion else { throw reader.error("Version", .unsupportedVersion(version), at: 6) }
        entryCount = try reader.readInt(12, "SectionIds.NumEntries")
        rangesStart = reader.position
        var listed = 0
        var previous = 0
        for _ in 0..<entryCount {
            let isRange = try reader.readBool("SectionIds.IsRange")
            let first = previous &+ (try reader.readFibonacci("SectionIds.Start"))
            var last = first
            if isRange { last = first &+ (try reader.readFibonacci("SectionIds.End")) }
            listed &+= last &- first &+ 1
            previous = last
            if listed > limit { break }
        }
        listedCount = listed
        self.reader = reader
    }

    /// Calls `body` with each listed id, ascending; stops when `body` returns false.
    @inline(__always)
    public func forEachId(_ body: (Int) -> Bool) {
        var position = rangesStart
        var previous = 0
        for _ in 0..<entryCount {
            let isRange = reader.bit(at: position)
            position &+= 1
            let first = previous &+ Self.peekFibonacci(reader, at: &position)
            var last = first
            if isRange { last = first &+ Self.peekFibonacci(reader, at: &position) }
            previous = last
            for id in first...last where !body(id) { return }
        }
    }

    /// A Fibonacci integer already checked by `BitReader.readFibonacci`.
    @inline(__always)
    static func peekFibonacci(_ reader: BitReader, at position: inout Int) -> Int {
        var value = 0
        var previous = false
        var weight = 1
        var nextWeight = 2
        while position < reader.bitCount {
            let one = reader.bit(at: position)
            position &+= 1
            if one && previous { return value }
            if one { value &+= weight }
            previous = one
            (weight, nextWeight) = (nextWeight, weight &+ nextWeight)
        }
        return value
    }
}

/// A GPP v1 string, read in place: a header, then one `~`-separated section per listed id, in
/// the header's order.
///
/// Parsing checks the header, that it lists exactly as many sections as the string carries, and
/// every section consentd decodes (TCF EU v2, US Privacy, US national and states): a malformed
/// section makes the whole string malformed. Borrows the bytes it was parsed from.
public struct GPPString {
    let bytes: UnsafeRawBufferPointer
    public let header: GPPHeader
    public let sectionCount: Int

    public var version: Int { header.version }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(SignalError) {
        self.bytes = bytes
        var headerEnd = bytes.count
        var sections = 0
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: "~") {
            if headerEnd == bytes.count { headerEnd = index }
            sections &+= 1
        }
        header = try GPPHeader(parsing: UnsafeRawBufferPointer(rebasing: bytes[0..<headerEnd]), limit: sections)
        guard header.listedCount == sections else {
            throw header.reader.error("SectionIds", .sectionCountMismatch(header: header.listedCount, sections: sections), at: header.rangesStart &- 12)
        }
        sectionCount = sections
        var failure: SignalError?
        forEachSection { id, text in
            do throws(SignalError) {
                try GPPString.check(id: id, text)
            } catch {
                failure = error
                return false
            }
            return true
        }
        if let failure { throw failure }
    }

    /// Parses a String's UTF-8 in place and runs `body` on the result (which must not escape it).
    public static func withParsed<R>(_ string: String, _ body: (GPPString) throws -> R) throws -> R {
        var copy = string
        return try copy.withUTF8 { utf8 in
            try body(try GPPString(parsing: UnsafeRawBufferPointer(utf8)))
        }
    }

    private static func check(id: Int, _ text: UnsafeRawBufferPointer) throws(SignalError) {
        do throws(SignalError) {
            try checkSection(id: id, text)
        } catch {
            var located = error
            located.gppSection = id
            throw located
        }
    }

    private static func checkSection(id: Int, _ text: UnsafeRawBufferPointer) throws(SignalError) {
        switch id {
        case GPPSectionId.tcfEuV2:
            _ = try TCFString(parsing: text, signal: .gpp)
        case GPPSectionId.usPrivacy:
            _ = try USPrivacyString(parsing: text, signal: .gpp)
        case GPPSectionId.usNational, GPPSectionId.usStates:
            _ = try USSection(id: id, parsing: text)
        default:
            guard !text.isEmpty else {
                throw SignalError(.gpp, segment: "section", field: "(section)", bitOffset: 0, problem: .empty)
            }
        }
    }

    /// Calls `body(id, text)` for each section in order; stops when `body` returns false.
    public func forEachSection(_ body: (Int, UnsafeRawBufferPointer) -> Bool) {
        var sectionStart = 0
        while sectionStart < bytes.count, bytes[sectionStart] != UInt8(ascii: "~") { sectionStart &+= 1 }
        sectionStart &+= 1
        header.forEachId { id in
            var end = sectionStart
            while end < bytes.count, bytes[end] != UInt8(ascii: "~") { end &+= 1 }
            guard sectionStart <= end else { return false }
            let keepGoing = body(id, UnsafeRawBufferPointer(rebasing: bytes[sectionStart..<end]))
            sectionStart = end &+ 1
            return keepGoing
        }
    }

    /// The text of section `id`, when the string carries it.
    public func sectionText(_ id: Int) -> UnsafeRawBufferPointer? {
        var found: UnsafeRawBufferPointer?
        forEachSection { sectionId, text in
            if sectionId == id { found = text }
            return sectionId < id
        }
        return found
    }

    /// Whether the header lists section `id`.
    public func contains(_ id: Int) -> Bool { sectionText(id) != nil }

    /// The TCF EU v2 section (2), parsed, when present.
    public func tcfEuV2() -> TCFString? {
        guard let text = sectionText(GPPSectionId.tcfEuV2) else { return nil }
        return try? TCFString(parsing: text, signal: .gpp)
    }

    /// The US Privacy section (6), when present.
    public func usPrivacy() -> USPrivacyString? {
        guard let text = sectionText(GPPSectionId.usPrivacy) else { return nil }
        return try? USPrivacyString(parsing: text, signal: .gpp)
    }

    /// A US section (7…12), when present.
    public func usSection(_ id: Int) -> USSection? {
        guard id == GPPSectionId.usNational || GPPSectionId.usStates.contains(id), let text = sectionText(id) else { return nil }
        return try? USSection(id: id, parsing: text)
    }
}
