/// Why a consent signal string cannot be read: which kind of string, which part of it, which
/// field, and the bit offset (within that part) where reading failed. Malformed signals fail
/// closed: the decision layer denies what they could have affected and quotes this message.
public struct SignalError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        /// The string ends before the field: it needs `needed` bits and `available` remain.
        case truncated(needed: Int, available: Int)
        /// A character outside the base64url alphabet (`A–Z a–z 0–9 - _`), as its byte value.
        case invalidCharacter(UInt8)
        /// A version (or type) field holds a value this decoder does not read.
        case unsupportedVersion(Int)
        /// A range entry whose start exceeds its end.
        case rangeStartAfterEnd(start: Int, end: Int)
        /// A vendor id above the section's MaxVendorId.
        case vendorBeyondMaximum(id: Int, maximum: Int)
        /// Vendor, purpose and section ids start at 1.
        case zeroIdentifier
        /// A field holding a value the specification does not define.
        case invalidValue(Int)
        /// The same optional segment twice, or a segment type the specification does not define.
        case unexpectedSegment(Int)
        /// A GPP header listing a different number of sections than the string carries.
        case sectionCountMismatch(header: Int, sections: Int)
        /// A GPP header listing a section id twice or out of order.
        case sectionOrder(Int)
        /// A part of the string that must not be empty is.
        case empty
        /// A fixed-length string of the wrong length (US Privacy: 4 characters).
        case length(Int)
        /// A US Privacy character other than `Y`, `N` or `-`.
        case invalidFlag(UInt8)
        /// A Fibonacci-coded integer longer than the decoder accepts.
        case fibonacciTooLong
        /// A string longer than a request may carry.
        case tooLong(bytes: Int, limit: Int)
    }

    /// `tcf`, `gpp` or `usp`.
    public let signal: SignalKind
    /// The part of the string: `core`, `disclosed vendors`, `header`, `usnat`, `usnat GPC`, …
    public let segment: StaticString
    /// The specification's name for the field being read.
    public let field: StaticString
    /// Bit offset of the field within `segment` (characters × 6 for character errors).
    public let bitOffset: Int
    public let problem: Problem
    /// For an error inside a GPP section: the section's id.
    public var gppSection: Int?

    public init(_ signal: SignalKind, segment: StaticString, field: StaticString, bitOffset: Int, problem: Problem) {
        self.signal = signal
        self.segment = segment
        self.field = field
        self.bitOffset = bitOffset
        self.problem = problem
    }

    public static func == (lhs: SignalError, rhs: SignalError) -> Bool {
        lhs.signal == rhs.signal && "\(lhs.segment)" == "\(rhs.segment)" && "\(lhs.field)" == "\(rhs.field)"
            && lhs.bitOffset == rhs.bitOffset && lhs.problem == rhs.problem && lhs.gppSection == rhs.gppSection
    }

    public var description: String {
        let part = gppSection.map { "section \($0) (\(GPPSectionId.name($0))), " } ?? ""
        return "\(signal.rawValue) \(part)\(segment), field \(field) at bit \(bitOffset): \(problemText)"
    }

    var problemText: String {
        switch problem {
        case .truncated(let needed, let available):
            return available <= 0 ? "the string ends here, the field needs \(needed) bits" : "the field needs \(needed) bits, only \(available) remain"
        case .invalidCharacter(let byte):
            return "byte 0x\(String(byte, radix: 16, uppercase: true)) is not a base64url character"
        case .unsupportedVersion(let value): return "unsupported value \(value)"
        case .rangeStartAfterEnd(let start, let end): return "range start \(start) exceeds its end \(end)"
        case .vendorBeyondMaximum(let id, let maximum): return "vendor id \(id) exceeds MaxVendorId \(maximum)"
        case .zeroIdentifier: return "ids start at 1, found 0"
        case .invalidValue(let value): return "value \(value) is not defined"
        case .unexpectedSegment(let type): return "segment type \(type) is repeated or not defined"
        case .sectionCountMismatch(let header, let sections):
            return "the header lists \(header) section\(header == 1 ? "" : "s") but the string has \(sections)"
        case .sectionOrder(let id): return "section id \(id) is repeated or out of order"
        case .empty: return "empty"
        case .length(let count): return "must be 4 characters, found \(count)"
        case .invalidFlag(let byte):
            let shown = (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16, uppercase: true))"
            return "\(shown) is not 'Y', 'N' or '-'"
        case .fibonacciTooLong: return "Fibonacci integer longer than 32 bits"
        case .tooLong(let bytes, let limit): return "\(bytes) bytes, more than the \(limit) a request may carry"
        }
    }
}

/// The kinds of signal string consentd reads.
public enum SignalKind: String, Sendable, Equatable, CaseIterable {
    /// A TCF v2 TC string (v2.2 and v2.3 share the layout).
    case tcf
    /// A GPP v1 string.
    case gpp
    /// A US Privacy (CCPA) string, version 1.
    case usp
}
