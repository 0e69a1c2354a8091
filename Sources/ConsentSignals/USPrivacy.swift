/// A US Privacy string (IAB CCPA Compliance Framework, version 1): four characters — the version
/// `1`, then explicit notice, opt-out of sale and LSPA coverage, each `Y`, `N` or `-` (not
/// applicable). Case matters: `y` is not `Y`.
public struct USPrivacyString: Equatable, Sendable {
    public let version: Int
    /// The characters as given: `Y`, `N` or `-`.
    public let notice: UInt8
    public let optOutSale: UInt8
    public let lspa: UInt8

    public static let supportedVersion = 1

    public init(parsing bytes: UnsafeRawBufferPointer, signal: SignalKind = .usp) throws(SignalError) {
        guard bytes.count == 4 else {
            throw SignalError(signal, segment: "string", field: "(length)", bitOffset: 0, problem: .length(bytes.count))
        }
        guard bytes[0] == UInt8(ascii: "1") else {
            let value = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0]) ? Int(bytes[0] - UInt8(ascii: "0")) : -1
            if value < 0 { throw SignalError(signal, segment: "string", field: "Version", bitOffset: 0, problem: .invalidFlag(bytes[0])) }
            throw SignalError(signal, segment: "string", field: "Version", bitOffset: 0, problem: .unsupportedVersion(value))
        }
        version = 1
        notice = try Self.flag(bytes[1], "ExplicitNotice", at: 1, signal)
        optOutSale = try Self.flag(bytes[2], "OptOutSale", at: 2, signal)
        lspa = try Self.flag(bytes[3], "LSPACovered", at: 3, signal)
    }

    public init(_ string: String) throws(SignalError) {
        var copy = string
        let result: Result<USPrivacyString, SignalError> = copy.withUTF8 { utf8 in
            do throws(SignalError) { return .success(try USPrivacyString(parsing: UnsafeRawBufferPointer(utf8))) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// The customer opted out of the sale of their personal information.
    public var optedOutOfSale: Bool { optOutSale == UInt8(ascii: "Y") }

    private static func flag(_ byte: UInt8, _ field: StaticString, at index: Int, _ signal: SignalKind) throws(SignalError) -> UInt8 {
        switch byte {
        case UInt8(ascii: "Y"), UInt8(ascii: "N"), UInt8(ascii: "-"): return byte
        default: throw SignalError(signal, segment: "string", field: field, bitOffset: index * 8, problem: .invalidFlag(byte))
        }
    }
}
