/// An instant in UTC, as whole microseconds since 1970-01-01T00:00:00Z.
///
/// Fixed-width so that consent records stay compact and comparisons are a single integer compare.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Microseconds since the Unix epoch.
    public var microseconds: Int64

    /// Creates a timestamp from microseconds since the Unix epoch.
    public init(microseconds: Int64) { self.microseconds = microseconds }

    /// Creates a timestamp from whole seconds since the Unix epoch (saturating at the ends of
    /// the representable range; values from outside go through `init?(seconds:nanos:)`).
    public init(seconds: Int64) {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        self.microseconds = overflow ? (seconds < 0 ? .min : .max) : product
    }

    /// The earliest instant accepted from outside: 0001-01-01T00:00:00Z.
    public static let minimumValid = Timestamp(microseconds: -62_135_596_800_000_000)
    /// The latest instant accepted from outside: 9999-12-31T23:59:59.999999Z.
    public static let maximumValid = Timestamp(microseconds: 253_402_300_799_999_999)

    /// Whether the instant lies in 0001-01-01…9999-12-31, the range every value from outside
    /// (wire, files, store rows) must be in.
    @inlinable
    public var isInValidRange: Bool {
        microseconds >= Timestamp.minimumValid.microseconds && microseconds <= Timestamp.maximumValid.microseconds
    }

    /// The one conversion from a protobuf-style `(seconds, nanos)` pair: nil unless nanos are in
    /// [0, 10⁹) and the instant lies in 0001-01-01…9999-12-31. Sub-microsecond nanos are dropped.
    @inlinable
    public init?(seconds: Int64, nanos: Int32) {
        guard nanos >= 0, nanos < 1_000_000_000,
              seconds >= Timestamp.minimumValid.microseconds / 1_000_000,
              seconds <= Timestamp.maximumValid.microseconds / 1_000_000 else { return nil }
        self.microseconds = seconds * 1_000_000 + Int64(nanos / 1000)
    }

    /// The one split into protobuf-style whole seconds (floor) and nanos in [0, 10⁹), total for
    /// every representable value.
    @inlinable
    public var secondsAndNanos: (seconds: Int64, nanos: Int32) {
        var (seconds, micros) = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        if micros < 0 {
            seconds -= 1
            micros += 1_000_000
        }
        return (seconds, Int32(micros) * 1000)
    }

    /// The earliest representable instant; used as "no lower bound".
    public static let distantPast = Timestamp(microseconds: .min)
    /// The latest representable instant; used as "never expires".
    public static let distantFuture = Timestamp(microseconds: .max)

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    /// The instant `span` later (saturating).
    public func adding(_ span: TimeSpan) -> Timestamp {
        let (sum, overflow) = microseconds.addingReportingOverflow(span.microseconds)
        return Timestamp(microseconds: overflow ? (span.microseconds > 0 ? .max : .min) : sum)
    }

    /// RFC 3339 in UTC, e.g. `2026-06-01T00:00:00Z` (fractional seconds only when present).
    public var description: String { rfc3339 }

    /// RFC 3339 in UTC, e.g. `2026-06-01T00:00:00Z` (fractional seconds only when present).
    public var rfc3339: String { rfc3339(fraction: .trimmed) }

    /// How an RFC 3339 text writes the fraction of a second.
    public enum FractionStyle: Sendable {
        /// Only the digits needed, none for a whole second: `00:00:00.5Z`, `00:00:00Z`.
        case trimmed
        /// Always six digits: `00:00:00.500000Z` (receipts).
        case microseconds
        /// None, and no zone either: `2026-06-01T00:00:00` (the whole second, to build on).
        case secondOnly
    }

    /// RFC 3339 in UTC with the fraction as `style` says.
    public func rfc3339(fraction style: FractionStyle) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        appendRFC3339(to: &bytes, fraction: style)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the RFC 3339 text (UTC) to `out`: the one formatter of timestamps.
    public func appendRFC3339(to out: inout [UInt8], fraction style: FractionStyle = .trimmed) {
        let (seconds, nanos) = secondsAndNanos
        let fraction = Int64(nanos / 1000)
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil-from-days (Howard Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func digits(_ value: Int64, _ width: Int) {
            // Valid timestamps have years 0001…9999; wider values are written whole.
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            if value < 0 {
                out.append(UInt8(ascii: "-"))
                out.append(contentsOf: String(-value).utf8)
                return
            }
            while divisor > 1 && value >= divisor * 10 { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(year, 4)
        out.append(UInt8(ascii: "-"))
        digits(month, 2)
        out.append(UInt8(ascii: "-"))
        digits(day, 2)
        out.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay % 3600 / 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2)
        switch style {
        case .secondOnly:
            return
        case .microseconds:
            out.append(UInt8(ascii: "."))
            digits(fraction, 6)
        case .trimmed:
            if fraction != 0 {
                var width = 6
                var value = fraction
                while value % 10 == 0 {
                    value /= 10
                    width -= 1
                }
                out.append(UInt8(ascii: "."))
                digits(value, width)
            }
        }
        out.append(UInt8(ascii: "Z"))
    }

    /// Parses RFC 3339 (`2026-06-01T00:00:00Z`, `2026-06-01T02:00:00.5+02:00`) or a plain date
    /// (`2026-06-01`, midnight UTC). Returns nil for anything else.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        var position = 0
        func number(_ width: Int) -> Int64? {
            guard position + width <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[position..<position + width] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            position += width
            return value
        }
        func expect(_ character: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == character else { return false }
            position += 1
            return true
        }
        guard let year = number(4), expect(UInt8(ascii: "-")), let month = number(2),
              expect(UInt8(ascii: "-")), let day = number(2),
              (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year)
        else { return nil }
        var hour: Int64 = 0, minute: Int64 = 0, second: Int64 = 0, fraction: Int64 = 0, offset: Int64 = 0
        if position < bytes.count {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "T") || bytes[position] == UInt8(ascii: "t") || bytes[position] == UInt8(ascii: " ") else { return nil }
            position += 1
            guard let h = number(2), expect(UInt8(ascii: ":")), let m = number(2), expect(UInt8(ascii: ":")),
                  let s = number(2), h < 24, m < 60, s < 61 else { return nil }
            hour = h; minute = m; second = min(s, 59)
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                var digits = 0
                while position < bytes.count, bytes[position] >= 48, bytes[position] <= 57 {
                    if digits < 6 { fraction = fraction * 10 + Int64(bytes[position] - 48) }
                    digits += 1
                    position += 1
                }
                guard digits > 0 else { return nil }
                for _ in min(digits, 6)..<6 { fraction *= 10 }
            }
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                position += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign: Int64 = bytes[position] == UInt8(ascii: "+") ? 1 : -1
                position += 1
                guard let oh = number(2), expect(UInt8(ascii: ":")), let om = number(2), oh < 24, om < 60 else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            default:
                return nil
            }
            guard position == bytes.count else { return nil }
        }
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        self.microseconds = seconds * 1_000_000 + fraction
        // Year 0000, or an offset that moves 0001-01-01/9999-12-31 past the range.
        guard isInValidRange else { return nil }
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

/// A length of time, in microseconds; written in policy files as `30s`, `15m`, `12h` or `395d`.
public struct TimeSpan: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The span in microseconds.
    public var microseconds: Int64

    /// Creates a span from microseconds.
    public init(microseconds: Int64) { self.microseconds = microseconds }

    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.microseconds < rhs.microseconds }

    private static let units: [(suffix: Character, microseconds: Int64)] = [
        ("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000),
    ]

    /// Parses `<positive integer><unit>` with unit one of `s`, `m`, `h`, `d`. Returns nil otherwise.
    public init?(policyText text: String) {
        guard let unit = text.last, let scale = TimeSpan.units.first(where: { $0.suffix == unit })?.microseconds,
              text.count >= 2 else { return nil }
        let digits = text.dropLast()
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        self.microseconds = product
    }

    /// The largest unit that divides the span exactly, e.g. `395d`.
    public var description: String {
        for (suffix, scale) in TimeSpan.units where microseconds % scale == 0 && microseconds != 0 {
            return "\(microseconds / scale)\(suffix)"
        }
        return "\(microseconds)us"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Timestamp {
    /// The current wall-clock time. For the edges of the system only: the decision core takes time as an argument.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microseconds: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000)
    }
}
