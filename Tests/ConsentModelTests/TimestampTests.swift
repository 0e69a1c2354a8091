import Foundation
import ConsentModel
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-06-01T00:00:00Z", Int64(1_780_272_000_000_000)),
        ("2026-06-01", Int64(1_780_272_000_000_000)),
        ("2026-06-01T02:00:00+02:00", Int64(1_780_272_000_000_000)),
        ("2026-05-31T23:59:59.999999Z", Int64(1_780_271_999_999_999)),
        ("2024-02-29T12:00:00.5Z", Int64(1_709_208_000_500_000)),
        ("1969-12-31T23:59:59Z", Int64(-1_000_000)),
    ])
    func parsesRFC3339(text: String, microseconds: Int64) {
        #expect(Timestamp(rfc3339: text)?.microseconds == microseconds)
    }

    @Test(arguments: ["", "2026", "2026-13-01", "2026-02-30", "2025-02-29", "2026-06-01T25:00:00Z", "2026-06-01T00:00:00", "2026-06-01T00:00:00Zjunk", "yesterday", "2026-06-01T00:00:00.Z"])
    func rejectsWhatIsNotRFC3339(text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func formattingRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let value = Timestamp(microseconds: Int64.random(in: -2_000_000_000_000_000...7_000_000_000_000_000, using: &rng))
            #expect(Timestamp(rfc3339: value.rfc3339) == value, "\(value.microseconds) → \(value.rfc3339)")
        }
        #expect(Timestamp(seconds: 0).rfc3339 == "1970-01-01T00:00:00Z")
        #expect(Timestamp(microseconds: 1_500_000).rfc3339 == "1970-01-01T00:00:01.5Z")
    }

    @Test(arguments: [("30s", Int64(30_000_000)), ("15m", Int64(900_000_000)), ("12h", Int64(43_200_000_000)), ("395d", Int64(34_128_000_000_000))])
    func parsesDurations(text: String, microseconds: Int64) {
        #expect(TimeSpan(policyText: text)?.microseconds == microseconds)
        #expect(TimeSpan(policyText: text)?.description == text)
    }

    @Test(arguments: ["", "d", "0d", "-1d", "1w", "1.5d", "13 months", "1d2h", "99999999999999999d"])
    func rejectsBadDurations(text: String) {
        #expect(TimeSpan(policyText: text) == nil)
    }

    @Test func aRecordIsValidFromItsRecordingUntilJustBeforeItsExpiry() {
        let record = CompactRecord(purpose: 0, choice: .grant, recordedAt: Timestamp(seconds: 10), expiresAt: Timestamp(seconds: 20))
        #expect(!record.isValid(at: Timestamp(seconds: 9)))
        #expect(record.isValid(at: Timestamp(seconds: 10)))
        #expect(record.isValid(at: Timestamp(microseconds: 19_999_999)))
        #expect(!record.isValid(at: Timestamp(seconds: 20)))
    }
}

@Suite struct VocabularyTests {
    @Test func internedIdsAreDenseAndStable() {
        let table = KeyTable()
        #expect(table.intern("a") == 0)
        #expect(table.intern("b") == 1)
        #expect(table.intern("a") == 0)
        #expect(table.name(1) == "b")
        #expect(table.name(2) == nil)
        #expect(table.lookup("c") == nil)
        #expect(table.count == 2)
    }

    @Test func namesRoundTrip() {
        for reason in ReasonCode.allCases { #expect(ReasonCode(name: reason.description) == reason) }
        for basis in LegalBasis.allCases { #expect(LegalBasis(name: basis.description) == basis) }
        #expect(Choice(name: "grant") == .grant)
        #expect(Choice(name: "GRANT") == nil)
        #expect(Set(ReasonCode.allCases.map(\.description)) == ["CONSENT_GRANTED", "NOT_OPTED_OUT", "LEGAL_BASIS", "PROHIBITED", "NO_CONSENT", "CONSENT_DENIED", "CONSENT_EXPIRED", "CONSENT_STALE", "OPTED_OUT_BY_SIGNAL", "NO_MATCHING_RULE", "UNKNOWN_PURPOSE", "UNKNOWN_DATA_CATEGORY", "INVALID_REQUEST", "INVALID_SIGNAL", "CONSENT_UNAVAILABLE"])
    }
}

@Suite struct TimestampRangeTests {
    /// The protobuf split by an oracle that does the arithmetic in 128 bits.
    static func oracleSplit(_ micros: Int64) -> (Int64, Int32) {
        let wide = Int128(micros)
        var seconds = wide / 1_000_000
        var rest = wide % 1_000_000
        if rest < 0 { seconds -= 1; rest += 1_000_000 }
        return (Int64(seconds), Int32(rest * 1000))
    }

    @Test func theSplitIsTotalAndFloors() {
        var rng = SystemRandomNumberGenerator()
        var values: [Int64] = [.min, .min + 1, .max, .max - 1, 0, 1, -1, 999_999, -999_999, 1_000_000, -1_000_000, -1_000_001]
        for _ in 0..<5000 { values.append(Int64.random(in: .min ... .max, using: &rng)) }
        for micros in values {
            let split = Timestamp(microseconds: micros).secondsAndNanos
            let expected = Self.oracleSplit(micros)
            #expect(split.seconds == expected.0 && split.nanos == expected.1, "\(micros)")
            // Formatting never traps, whatever the value.
            _ = Timestamp(microseconds: micros).rfc3339
        }
    }

    @Test func onlyInstantsInTheValidRangeComeIn() {
        #expect(Timestamp(seconds: -62_135_596_800, nanos: 0) == .minimumValid)
        #expect(Timestamp(seconds: 253_402_300_799, nanos: 999_999_999) == .maximumValid)
        for (seconds, nanos) in [(-62_135_596_801, 999_999_999), (253_402_300_800, 0), (0, -1), (0, 1_000_000_000), (Int64.min, 0), (Int64.max, 0),
                                 (-9_223_372_036_854, 0), (1 << 57, 0)] as [(Int64, Int32)] {
            #expect(Timestamp(seconds: seconds, nanos: nanos) == nil, "\(seconds) \(nanos)")
        }
        #expect(Timestamp(seconds: 0, nanos: 999) == Timestamp(microseconds: 0))
        #expect(Timestamp(rfc3339: "0000-12-31T23:59:59Z") == nil)
        #expect(Timestamp(rfc3339: "0001-01-01T00:00:00+00:01") == nil)
        #expect(Timestamp(rfc3339: "0001-01-01T00:00:00Z") == .minimumValid)
        #expect(Timestamp(rfc3339: "9999-12-31T23:59:59.999999Z") == .maximumValid)
        #expect(Timestamp(seconds: Int64.max).microseconds == .max, "saturates instead of wrapping")
        #expect(Timestamp(seconds: Int64.min).microseconds == .min)
    }
}

/// The one RFC 3339 formatter, against Foundation's calendar arithmetic (an implementation that
/// shares nothing with it) for instants it covers the same way (proleptic Gregorian from 1600).
@Suite struct TimestampFormatTests {
    static func oracle(_ instant: Timestamp) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let (seconds, nanos) = instant.secondsAndNanos
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        func pad(_ value: Int, _ width: Int) -> String { String(repeating: "0", count: max(0, width - String(value).count)) + String(value) }
        return "\(pad(parts.year!, 4))-\(pad(parts.month!, 2))-\(pad(parts.day!, 2))T\(pad(parts.hour!, 2)):\(pad(parts.minute!, 2)):\(pad(parts.second!, 2)).\(pad(Int(nanos / 1000), 6))Z"
    }

    @Test func everyStyleIsTheSameInstantAsTheOracleWrites() {
        var rng = SystemRandomNumberGenerator()
        let low = Timestamp(rfc3339: "1600-01-01T00:00:00Z")!.microseconds
        var values: [Int64] = [0, 1, -1, 999_999, 1_000_000, -1_000_000, low, Timestamp.maximumValid.microseconds, 951_782_400_000_000 /* 2000-02-29 */]
        for _ in 0..<3000 { values.append(Int64.random(in: low...Timestamp.maximumValid.microseconds, using: &rng)) }
        for micros in values {
            let instant = Timestamp(microseconds: micros)
            let full = instant.rfc3339(fraction: .microseconds)
            #expect(full == Self.oracle(instant), "\(micros)")
            #expect(instant.rfc3339(fraction: .secondOnly) + "." == String(full.prefix(20)), "\(micros)")
            var trimmed = String(full.dropLast())
            while trimmed.hasSuffix("0") { trimmed.removeLast() }
            if trimmed.hasSuffix(".") { trimmed.removeLast() }
            #expect(instant.rfc3339 == trimmed + "Z", "\(micros)")
            #expect(Timestamp(rfc3339: instant.rfc3339) == instant && Timestamp(rfc3339: full) == instant, "\(micros)")
        }
    }
}
