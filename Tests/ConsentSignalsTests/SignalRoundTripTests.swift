@testable import ConsentSignals
import ConsentModel
import ConsentWorkload
import Testing

/// Round trips through an encoder written here from the specifications (it shares no code with
/// the decoders): seeded random models are encoded, decoded, and compared field by field, and the
/// in-place queries are asked about every id around the model's sets.
struct SignalRoundTripTests {
    /// The workload's splitmix64 (seeded, the same on every machine), with the draws these tests use.
    struct Random {
        var generator: SplitMix64
        init(state: UInt64) { generator = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { generator.next() }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
        mutating func ids(upTo maximum: Int, density: Int) -> Set<Int> {
            guard maximum > 0 else { return [] }
            var set = Set<Int>()
            for id in 1...maximum where chance(density) { set.insert(id) }
            return set
        }
    }

    /// Bits, most significant first, written out as base64url characters (zero-padded).
    struct BitWriter {
        var bits: [Bool] = []
        mutating func write(_ value: Int, _ width: Int) {
            precondition(value >= 0 && (width == 64 || value < 1 << width), "\(value) does not fit \(width) bits")
            for shift in stride(from: width - 1, through: 0, by: -1) { bits.append((value >> shift) & 1 == 1) }
        }
        mutating func write(_ flag: Bool) { bits.append(flag) }
        mutating func write(set: Set<Int>, width: Int) {
            for id in 1...max(width, 1) where id <= width { bits.append(set.contains(id)) }
        }
        /// A Fibonacci code (GPP): Zeckendorf representation, LSB first, then a terminating 1.
        mutating func writeFibonacci(_ value: Int) {
            precondition(value >= 1)
            var fibs = [1, 2]
            while fibs.last! <= value { fibs.append(fibs[fibs.count - 1] + fibs[fibs.count - 2]) }
            var code = [Bool](repeating: false, count: fibs.count)
            var rest = value
            for index in stride(from: fibs.count - 1, through: 0, by: -1) where fibs[index] <= rest {
                code[index] = true
                rest -= fibs[index]
            }
            while code.last == false { code.removeLast() }
            bits += code + [true]
        }
        var text: String {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            var padded = bits
            while padded.count % 6 != 0 { padded.append(false) }
            var out = ""
            for start in stride(from: 0, to: padded.count, by: 6) {
                var value = 0
                for bit in padded[start..<(start + 6)] { value = value << 1 | (bit ? 1 : 0) }
                out.append(alphabet[value])
            }
            return out
        }
    }

    // MARK: TCF

    struct VendorModel {
        var ids: Set<Int>
        var maximum: Int
        var ranged: Bool

        static func random(_ random: inout Random) -> VendorModel {
            let maximum = random.chance(10) ? 0 : random.below(random.chance(20) ? 3000 : 200) + 1
            let ids = random.ids(upTo: maximum, density: [0, 3, 30, 90][random.below(4)])
            return VendorModel(ids: ids.union(maximum > 0 && random.chance(50) ? [maximum] : []), maximum: maximum, ranged: random.chance(50))
        }

        /// MaxVendorId, IsRangeEncoding, then a bitfield or single ids and ranges.
        func write(_ writer: inout BitWriter, withMaximum: Bool = true) {
            if withMaximum {
                writer.write(maximum, 16)
                writer.write(ranged)
                if !ranged {
                    writer.write(set: ids, width: maximum)
                    return
                }
            }
            let runs = Self.runs(ids)
            writer.write(runs.count, 12)
            for run in runs {
                writer.write(run.count > 1)
                writer.write(run.lowerBound, 16)
                if run.count > 1 { writer.write(run.upperBound, 16) }
            }
        }

        static func runs(_ ids: Set<Int>) -> [ClosedRange<Int>] {
            var runs: [ClosedRange<Int>] = []
            for id in ids.sorted() {
                if let last = runs.last, last.upperBound + 1 == id {
                    runs[runs.count - 1] = last.lowerBound...id
                } else {
                    runs.append(id...id)
                }
            }
            return runs
        }
    }

    struct TCModel {
        var created = 0, lastUpdated = 0, cmpId = 0, cmpVersion = 0, screen = 0, language = 0, listVersion = 1, policyVersion = 4
        var serviceSpecific = false, nonStandard = false, purposeOne = false, country = 0
        var features = Set<Int>(), purposes = Set<Int>(), purposeLI = Set<Int>()
        var consents = VendorModel(ids: [], maximum: 0, ranged: false)
        var interests = VendorModel(ids: [], maximum: 0, ranged: false)
        var restrictions: [(purpose: Int, type: Int, vendors: Set<Int>)] = []
        var disclosed: VendorModel?, allowed: VendorModel?
        var publisher: (consents: Set<Int>, interests: Set<Int>, custom: Int, customConsents: Set<Int>, customInterests: Set<Int>)?

        static func random(_ random: inout Random) -> TCModel {
            var model = TCModel()
            model.created = random.below(1 << 35)
            model.lastUpdated = random.below(1 << 35)
            model.cmpId = random.below(4096)
            model.cmpVersion = random.below(4096)
            model.screen = random.below(64)
            model.language = random.below(26) << 6 | random.below(26)
            model.listVersion = random.below(4096)
            model.policyVersion = random.below(64)
            model.serviceSpecific = random.chance(50)
            model.nonStandard = random.chance(50)
            model.purposeOne = random.chance(50)
            model.country = random.below(26) << 6 | random.below(26)
            model.features = random.ids(upTo: 12, density: 40)
            model.purposes = random.ids(upTo: 24, density: 50)
            model.purposeLI = random.ids(upTo: 24, density: 30)
            model.consents = .random(&random)
            model.interests = .random(&random)
            for _ in 0..<random.below(random.chance(70) ? 1 : 6) {
                model.restrictions.append((random.below(63) + 1, random.below(4), random.ids(upTo: random.below(400) + 1, density: 5)))
            }
            if random.chance(40) { model.disclosed = .random(&random) }
            if random.chance(20) { model.allowed = .random(&random) }
            if random.chance(30) {
                let custom = random.below(64)
                model.publisher = (random.ids(upTo: 24, density: 50), random.ids(upTo: 24, density: 50), custom,
                                   random.ids(upTo: custom, density: 50), random.ids(upTo: custom, density: 50))
            }
            return model
        }

        var text: String {
            var core = BitWriter()
            core.write(2, 6)
            core.write(created, 36)
            core.write(lastUpdated, 36)
            core.write(cmpId, 12)
            core.write(cmpVersion, 12)
            core.write(screen, 6)
            core.write(language, 12)
            core.write(listVersion, 12)
            core.write(policyVersion, 6)
            core.write(serviceSpecific)
            core.write(nonStandard)
            core.write(set: features, width: 12)
            core.write(set: purposes, width: 24)
            core.write(set: purposeLI, width: 24)
            core.write(purposeOne)
            core.write(country, 12)
            consents.write(&core)
            interests.write(&core)
            core.write(restrictions.count, 12)
            for restriction in restrictions {
                core.write(restriction.purpose, 6)
                core.write(restriction.type, 2)
                VendorModel(ids: restriction.vendors, maximum: 0, ranged: true).write(&core, withMaximum: false)
            }
            var segments = [core.text]
            for (type, set) in [(1, disclosed), (2, allowed)] {
                guard let set else { continue }
                var segment = BitWriter()
                segment.write(type, 3)
                set.write(&segment)
                segments.append(segment.text)
            }
            if let publisher {
                var segment = BitWriter()
                segment.write(3, 3)
                segment.write(set: publisher.consents, width: 24)
                segment.write(set: publisher.interests, width: 24)
                segment.write(publisher.custom, 6)
                segment.write(set: publisher.customConsents, width: publisher.custom)
                segment.write(set: publisher.customInterests, width: publisher.custom)
                segments.append(segment.text)
            }
            return segments.joined(separator: ".")
        }
    }

    static func time(_ deciseconds: Int) -> String {
        Timestamp(microseconds: Int64(deciseconds) * 100_000).rfc3339(fraction: .trimmed)
    }

    static func letters(_ code: Int) -> String {
        String(UnicodeScalar(UInt8(65 + code >> 6))) + String(UnicodeScalar(UInt8(65 + code & 63)))
    }

    @Test func tcStringsRoundTrip() throws {
        var random = Random(state: 0x7C5_1234)
        for round in 0..<400 {
            let model = TCModel.random(&random)
            let text = model.text
            let report = try SignalReport.decode(text, as: .tcf)
            let expected: [(String, SignalValue)] = [
                ("version", .int(2)), ("created", .string(Self.time(model.created))), ("last_updated", .string(Self.time(model.lastUpdated))),
                ("cmp_id", .int(model.cmpId)), ("cmp_version", .int(model.cmpVersion)), ("consent_screen", .int(model.screen)),
                ("consent_language", .string(Self.letters(model.language))), ("vendor_list_version", .int(model.listVersion)),
                ("policy_version", .int(model.policyVersion)), ("is_service_specific", .bool(model.serviceSpecific)),
                ("use_non_standard_texts", .bool(model.nonStandard)), ("special_feature_opt_ins", .ints(model.features.sorted())),
                ("purpose_consents", .ints(model.purposes.sorted())), ("purpose_legitimate_interests", .ints(model.purposeLI.sorted())),
                ("purpose_one_treatment", .bool(model.purposeOne)), ("publisher_cc", .string(Self.letters(model.country))),
                ("vendor_consents", .ints(model.consents.ids.sorted())), ("vendor_legitimate_interests", .ints(model.interests.ids.sorted())),
            ]
            for (key, value) in expected {
                #expect(report[key] == value, "round \(round) \(key): \(report[key]?.inline ?? "missing") != \(value.inline) in \(text)")
            }
            #expect(report["disclosed_vendors"] == model.disclosed.map { .ints($0.ids.sorted()) })
            #expect(report["allowed_vendors"] == model.allowed.map { .ints($0.ids.sorted()) })
            if let publisher = model.publisher {
                #expect(report["publisher_tc"] == .object([
                    SignalField("purpose_consents", .ints(publisher.consents.sorted())),
                    SignalField("purpose_legitimate_interests", .ints(publisher.interests.sorted())),
                    SignalField("custom_purpose_consents", .ints(publisher.customConsents.sorted())),
                    SignalField("custom_purpose_legitimate_interests", .ints(publisher.customInterests.sorted())),
                ]))
            } else {
                #expect(report["publisher_tc"] == nil)
            }
            // In place: every id around the sets, and every restriction's vendors.
            try TCFString.withParsed(text) { tc in
                for id in -1...(model.consents.maximum + 2) {
                    #expect(tc.vendorConsents.contains(id) == model.consents.ids.contains(id), "consent \(id) round \(round)")
                }
                for id in [0, 1, model.interests.maximum, model.interests.maximum + 1] + Array(model.interests.ids.prefix(50)) {
                    #expect(tc.vendorLegitimateInterests.contains(id) == model.interests.ids.contains(id))
                }
                for purpose in 0...25 {
                    #expect(tc.purposeConsent(purpose) == model.purposes.contains(purpose))
                    for vendor in [1, 2, 50, 399, 400, 401] {
                        var mask: UInt8 = 0
                        for restriction in model.restrictions where restriction.purpose == purpose && restriction.vendors.contains(vendor) {
                            mask |= 1 << UInt8(restriction.type)
                        }
                        #expect(tc.publisherRestrictions.types(purpose: purpose, vendor: vendor) == mask)
                    }
                }
                SignalInvariants.check(tc)
            }
        }
    }

    /// Every prefix of a valid string is either a valid string or an error naming a field and a
    /// bit offset inside the string — never a crash or a wrong read past the end.
    @Test func truncatedStringsFailWithAFieldAndAnOffset() throws {
        var random = Random(state: 99)
        for _ in 0..<40 {
            let text = TCModel.random(&random).text
            let core = text.split(separator: ".")[0]
            for length in 0..<core.count {
                do {
                    _ = try SignalReport.decode(String(core.prefix(length)), as: .tcf)
                } catch {
                    #expect(error.bitOffset <= length * 6, "\(error)")
                    if case .truncated(let needed, let available) = error.problem {
                        #expect(needed > available && error.bitOffset + available == length * 6, "\(error) at length \(length)")
                    }
                }
            }
        }
    }

    /// Overlapping ranges (every entry 1…65535, 4095 times) read as the 65 535 ids they cover:
    /// the report merges ranges instead of expanding each one (review 22 F4).
    @Test func overlappingRangesAreMergedNotExpandedEach() throws {
        var model = TCModel()
        model.consents = VendorModel(ids: [], maximum: 65535, ranged: true)
        var core = BitWriter()
        core.write(2, 6)
        for width in [36, 36, 12, 12, 6] { core.write(0, width) }
        core.write(0, 12)                    // language AA
        core.write(1, 12)                    // vendor list version
        core.write(4, 6)
        core.write(false); core.write(false)
        core.write(0, 12); core.write(0, 24); core.write(0, 24); core.write(false); core.write(0, 12)
        core.write(65535, 16); core.write(true); core.write(4095, 12)
        for _ in 0..<4095 { core.write(true); core.write(1, 16); core.write(65535, 16) }
        core.write(0, 16); core.write(false)  // legitimate interests: none
        core.write(0, 12)                     // no restrictions
        let report = try SignalReport.decode(core.text, as: .tcf)
        guard case .ints(let ids)? = report["vendor_consents"] else {
            Issue.record("no vendor_consents")
            return
        }
        #expect(ids.count == 65535 && ids.first == 1 && ids.last == 65535)
        try TCFString.withParsed(core.text) { tc in
            #expect(tc.vendorConsents.contains(65535) && !tc.vendorConsents.contains(65536))
        }
    }

    // MARK: GPP

    /// A US section's fields as the layout table lists them, random 2-bit values.
    static func usSection(_ layout: USSectionLayout, _ random: inout Random, version: Int = 1) -> (text: String, fields: [SignalField]) {
        var writer = BitWriter()
        writer.write(version, 6)
        var fields = [SignalField("version", .int(version))]
        for entry in layout.fields {
            let values = (0..<entry.count).map { _ in random.below(4) }
            for value in values { writer.write(value, 2) }
            fields.append(SignalField(entry.field.key, entry.field.isList ? .ints(values) : .int(values[0])))
        }
        var text = writer.text
        if layout.hasGPC, random.chance(60) {
            var gpc = BitWriter()
            let flag = random.chance(50)
            gpc.write(1, 2)
            gpc.write(flag)
            text += "." + gpc.text
            fields.append(SignalField("gpc", .bool(flag)))
        }
        return (text, fields)
    }

    static func header(_ ids: [Int]) -> String {
        var writer = BitWriter()
        writer.write(3, 6)
        writer.write(1, 6)
        let runs = VendorModel.runs(Set(ids))
        writer.write(runs.count, 12)
        var previous = 0
        for run in runs {
            writer.write(run.count > 1)
            writer.writeFibonacci(run.lowerBound - previous)
            if run.count > 1 { writer.writeFibonacci(run.upperBound - run.lowerBound) }
            previous = run.upperBound
        }
        return writer.text
    }

    @Test func gppStringsRoundTrip() throws {
        var random = Random(state: 0x6770)
        let layouts: [Int: USSectionLayout] = [7: random.chance(50) ? .usNatV1 : .usNatV2, 8: .usCA, 9: .usVA, 10: .usCO, 11: .usUT, 12: .usCT]
        for round in 0..<400 {
            var ids = Set<Int>()
            for id in [2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20, 40, 300] where random.chance(35) { ids.insert(id) }
            var texts: [String] = []
            var expected: [SignalField] = []
            for id in ids.sorted() {
                switch id {
                case 2:
                    let tc = TCModel.random(&random)
                    texts.append(tc.text)
                    expected.append(SignalField("tcfeuv2", try SignalReport.decode(tc.text, as: .tcf)["version"].map { _ in .int(2) } ?? .int(0)))
                case 6:
                    let flags = ["Y", "N", "-"]
                    let usp = "1" + flags[random.below(3)] + flags[random.below(3)] + flags[random.below(3)]
                    texts.append(usp)
                    expected.append(SignalField("uspv1", .object(SignalReport.usp(try USPrivacyString(usp)))))
                case 7...12:
                    let layout = id == 7 ? (random.chance(50) ? USSectionLayout.usNatV1 : .usNatV2) : layouts[id]!
                    let section = Self.usSection(layout, &random)
                    texts.append(section.text)
                    expected.append(SignalField(GPPSectionId.name(id), .object(section.fields)))
                default:
                    let text = String((0..<(random.below(20) + 1)).map { _ in Array("ABCxyz019-_.")[random.below(12)] })
                    texts.append(text)
                    expected.append(SignalField(GPPSectionId.name(id), .object([SignalField("decoded", .bool(false)), SignalField("text", .string(text))])))
                }
            }
            let string = ([Self.header(ids.sorted())] + texts).joined(separator: "~")
            let report = try SignalReport.decode(string, as: .gpp)
            #expect(report["section_ids"] == .ints(ids.sorted()), "round \(round): \(string)")
            guard case .object(let sections)? = report["sections"] else {
                Issue.record("no sections")
                continue
            }
            #expect(sections.map(\.key) == expected.map(\.key))
            for (actual, wanted) in zip(sections, expected) {
                if wanted.key == "tcfeuv2" {
                    #expect(actual.value["version"] == .int(2))
                } else {
                    #expect(actual.value == wanted.value, "round \(round) \(wanted.key): \(actual.value.inline) != \(wanted.value.inline)")
                }
            }
            try GPPString.withParsed(string) { gpp in
                SignalInvariants.check(gpp)
                for id in 0...301 { #expect(gpp.contains(id) == ids.contains(id)) }
            }
        }
    }

    /// A header that lists more or fewer sections than the string carries is an error.
    @Test func sectionCountsMustAgree() {
        let header = Self.header([6, 7])
        for string in [header + "~1YNN", header + "~1YNN~BAAAAAAAAQA~1NNN", header] {
            do {
                _ = try SignalReport.decode(string, as: .gpp)
                Issue.record("\(string) decoded")
            } catch {
                if case .sectionCountMismatch = error.problem {} else { Issue.record("\(error)") }
            }
        }
    }

    /// The Fibonacci code round-trips for every value a header can reasonably hold.
    @Test func fibonacciCodesRoundTrip() throws {
        for value in Array(1...2000) + [10_946, 46_368, 121_393, 1_000_000] {
            var writer = BitWriter()
            writer.writeFibonacci(value)
            var bytes = Array(writer.text.utf8)
            let decoded = try bytes.withUnsafeMutableBytes { raw throws(SignalError) -> Int in
                var reader = try BitReader(UnsafeRawBufferPointer(raw), signal: .gpp, segment: "header")
                return try reader.readFibonacci("SectionIds.Start")
            }
            #expect(decoded == value)
        }
    }
}

/// The fast bit reading agrees with the plain definitions it replaces: every byte is a base64url
/// character exactly when `sextet` says so, with the same value, and a gathered field of any width
/// at any offset is the field read one bit at a time.
@Suite struct BitReaderTests {
    @Test func theBranchFreeCharacterReadingIsTheTable() {
        for byte in UInt8.min...UInt8.max {
            #expect(isSextet(byte) == (sextet(byte) != nil), "byte \(byte)")
            if let value = sextet(byte) { #expect(validSextet(byte) == value, "byte \(byte)") }
        }
    }

    @Test func everyFieldReadsAsItsBits() throws {
        var rng = SplitMix64(seed: 23)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for _ in 0..<200 {
            let chars = (0..<Int(rng.next() % 30 + 12)).map { _ in alphabet[Int(rng.next() % 64)] }
            try chars.withUnsafeBytes { raw in
                let reader = try BitReader(raw, signal: .tcf, segment: "test")
                let bits = chars.flatMap { char in (0..<6).reversed().map { (sextet(char)! >> UInt8($0)) & 1 } }
                for _ in 0..<50 {
                    let width = Int(rng.next() % 65)
                    guard width <= bits.count else { continue }
                    let start = Int(rng.next() % UInt64(bits.count - width + 1))
                    let expected = bits[start..<(start + width)].reduce(UInt64(0)) { $0 << 1 | UInt64($1) }
                    #expect(reader.peek(at: start, width: width) == expected, "width \(width) at \(start)")
                    if width > 0 { #expect(reader.bit(at: start) == (bits[start] == 1)) }
                }
            }
        }
    }
}

/// The per-connection cache of the last TC string read answers exactly what a fresh reading
/// answers, wherever the bytes lie, and never keeps a malformed string.
@Suite struct TCFStringCacheTests {
    @Test func aCachedReadingIsAFreshReading() {
        let strings = [
            "CQjh0IAQjh0IAAHABBENBkEAAP_AAAAAAAYgHzgAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAA",
            "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw",
            "CQjh0IAQjh0I",
            "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw",
        ]
        let cache = TCFStringCache()
        var rng = SplitMix64(seed: 9)
        for _ in 0..<400 {
            // A fresh copy each time: the cache must compare bytes, not addresses. The vendor
            // changes now and then (same string, another vendor: the kept answer must not be).
            let text = strings[Int(rng.next() % UInt64(strings.count))]
            let vendor = [0, 1, 7, 8, 9, 755, 1000][Int(rng.next() % 7)]
            let bytes = Array(text.utf8)
            bytes.withUnsafeBytes { raw in
                let fresh: Result<TCFChoice, SignalError> = Result { () throws(SignalError) in try TCFString(parsing: raw).choice(of: vendor) }
                let cached: Result<TCFChoice, SignalError> = Result { () throws(SignalError) in try cache.choice(raw, vendor: vendor) }
                switch (fresh, cached) {
                case let (.success(a), .success(b)):
                    #expect(a == b)
                    #expect(b.vendor == vendor)
                case let (.failure(a), .failure(b)):
                    #expect("\(a)" == "\(b)")
                default:
                    Issue.record("the cache and a fresh reading disagree on \(text)")
                }
            }
        }
    }
}
