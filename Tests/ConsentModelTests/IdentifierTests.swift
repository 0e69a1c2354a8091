import ConsentModel
import Testing

/// The identifier rule against an independent implementation (the standard library's UTF-8
/// validation and Unicode general categories), on random byte strings that are mostly almost
/// valid: the generator does not know the rule it tests.
@Suite struct IdentifierTests {
    /// The oracle: valid UTF-8 (as the standard library decodes it, no repairs), 1–256 bytes, no
    /// scalar of general category Cc (exactly C0, DEL and C1).
    static func oracle(_ bytes: [UInt8]) -> Bool {
        guard (1...256).contains(bytes.count) else { return false }
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar):
                if scalar.properties.generalCategory == .control { return false }
            case .emptyInput:
                return true
            case .error:
                return false
            }
        }
    }

    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Pieces that sit on every edge of the rule.
    static let pieces: [[UInt8]] = [
        Array("a".utf8), Array("victim".utf8), [0x00], [0x1F], [0x20], [0x7E], [0x7F], [0xC2, 0x80], [0xC2, 0x9F], [0xC2, 0xA0],
        [0xC3, 0xA9], [0x65, 0xCC, 0x81], [0xE2, 0x84, 0xAB], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
        [0xED, 0x9F, 0xBF], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
        [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80], [0xBF], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x80],
    ]

    @Test func theRuleAgreesWithAnIndependentImplementationOnRandomBytes() {
        var generator = SplitMix(state: 0xC0FFEE)
        var accepted = 0
        for round in 0..<40_000 {
            var bytes: [UInt8] = []
            let pieces = Int(generator.next() % 12)
            for _ in 0..<pieces {
                if generator.next() % 8 == 0 {
                    bytes.append(UInt8(truncatingIfNeeded: generator.next()))
                } else {
                    bytes += Self.pieces[Int(generator.next() % UInt64(Self.pieces.count))]
                }
            }
            if round % 50 == 0 { bytes = [UInt8](repeating: 0x61, count: 250 + Int(generator.next() % 12)) }
            let expected = Self.oracle(bytes)
            let actual = bytes.withUnsafeBytes { Identifier.isValid(bytes: $0) }
            #expect(actual == expected, "\(bytes)")
            if expected {
                accepted += 1
                // The String form says the same.
                #expect(Identifier.isValid(String(decoding: bytes, as: UTF8.self)))
            } else {
                #expect(bytes.withUnsafeBytes { Identifier.problem(bytes: $0) } != nil)
            }
            // The fast paths' ASCII subset never accepts what the rule refuses.
            if bytes.withUnsafeBytes({ Identifier.isPrintableASCII(bytes: $0) }) { #expect(expected) }
        }
        #expect(accepted > 2_000, "the generator reaches valid ids too")
    }

    @Test func theEdgesOfTheRule() {
        #expect(!Identifier.isValid(""))
        #expect(Identifier.isValid(String(repeating: "x", count: 256)))
        #expect(!Identifier.isValid(String(repeating: "x", count: 257)))
        #expect(!Identifier.isValid(String(repeating: "é", count: 129)))  // 258 bytes
        #expect(Identifier.isValid(String(repeating: "é", count: 128)))
        for control in ["\u{0}", "\u{1F}", "\u{7F}", "\u{80}", "\u{85}", "\u{9F}"] {
            #expect(!Identifier.isValid("a" + control + "b"))
        }
        #expect(Identifier.isValid("\u{A0}"))
        #expect(Identifier.problem("victim\u{0}x")?.contains("control") == true)
    }

    @Test func exactStringsAreBytes() {
        let nfc = ExactString("jos\u{E9}"), nfd = ExactString("jose\u{301}")
        #expect("jos\u{E9}" == "jose\u{301}", "Swift's String == is canonical equivalence")
        #expect(nfc != nfd)
        #expect(Set([nfc, nfd]).count == 2)
        #expect([nfc: 1, nfd: 2].count == 2)
        let table = KeyTable()
        #expect(table.intern("jos\u{E9}") != table.intern("jose\u{301}"))
        #expect(table.lookup("\u{C5}") == nil)
    }

    @Test func excerptsAreShortAndPrintable() {
        #expect(Identifier.excerpt("DE") == "\"DE\"")
        #expect(Identifier.excerpt("a\"b\\c") == "\"a\\\"b\\\\c\"")
        #expect(Identifier.excerpt("\u{202E}DE\u{0}\u{85}") == "\"\\u{202E}DE\\u{0}\\u{85}\"")
        #expect(Identifier.excerpt("u\u{17F}") == "\"u\\u{17F}\"")
        #expect(Identifier.excerpt(String(repeating: "A", count: 16)) == "\"" + String(repeating: "A", count: 16) + "\"")
        #expect(Identifier.excerpt(String(repeating: "A", count: 17)) == "\"" + String(repeating: "A", count: 16) + "\"…")
        // One grapheme of a million bytes is cut by bytes, at a scalar boundary.
        let cluster = "a" + String(repeating: "\u{301}", count: 500_000)
        #expect(Identifier.excerpt(cluster) == "\"a" + String(repeating: "\\u{301}", count: 7) + "\"…")
        #expect(Identifier.excerpt("\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}") == "\"" + String(repeating: "\\u{1F600}", count: 4) + "\"…")
    }
}
