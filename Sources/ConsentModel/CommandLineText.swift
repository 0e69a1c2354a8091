#if canImport(Glibc)
import Glibc
#endif

/// The process's arguments as given, for consentd and consentctl alike. `CommandLine.arguments`
/// replaces bytes that are not UTF-8 with U+FFFD, so `consentctl consent erase $'a\xfe'` would
/// act on the customer `a\u{FFFD}` and consentd would serve a path other than the one named;
/// an argument that is not UTF-8 is refused instead (identity is bytes).
public enum CommandLineText {
    /// An argument that is not UTF-8.
    public struct InvalidArgument: Error, CustomStringConvertible, Sendable {
        /// 1-based position of the argument.
        public let position: Int
        /// The argument before it, when that names the option it belongs to.
        public let after: String?

        public var description: String {
            "argument \(position)" + (after.map { " (after \($0))" } ?? "") + " is not valid UTF-8; identifiers and paths are used as their exact bytes, so it is refused rather than repaired"
        }
    }

    /// The arguments after the program name, each validated as UTF-8.
    public static func arguments() throws(InvalidArgument) -> [String] {
        var words: [String] = []
        for index in 1..<Int(CommandLine.argc) {
            guard let pointer = CommandLine.unsafeArgv[index] else { break }
            guard let word = String(validatingCString: pointer) else {
                throw InvalidArgument(position: index, after: words.last.flatMap { $0.hasPrefix("-") ? $0 : nil })
            }
            words.append(word)
        }
        return words
    }
}
