import ArgumentParser
import ConsentSignals

/// `consentctl signals …`
struct SignalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signals",
        abstract: "Decode consent signal strings: TCF TC strings, GPP strings, US Privacy strings.",
        subcommands: [SignalsDecode.self]
    )
}

extension SignalKind: ExpressibleByArgument {}

/// `consentctl signals decode STRING`
struct SignalsDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print what a signal string says.",
        discussion: """
        The kind is guessed from the string unless --kind says it: four characters starting \
        with a digit are a US Privacy string (`1YNN`), a string starting with `D` is a GPP string \
        (`DBABMA~CP…`), anything else is read as a TCF v2 TC string (`CP…`). TC strings are read \
        whole (core, disclosed and allowed vendors, publisher TC); GPP strings decode the header \
        and the sections tcfeuv2 (2), uspv1 (6), usnat (7) and usca, usva, usco, usut, usct \
        (8–12), with their GPC subsections; other sections are listed as undecoded with their \
        text. --section N decodes one GPP section's text on its own.

        JSON (--format json) is an object with `kind` (tcf, gpp, usp) and the specifications' \
        field names in snake_case; id sets are sorted integer arrays, times RFC 3339 UTC. A \
        malformed string exits 1 with the error: the part of the string, the field and the bit \
        offset where reading failed (in JSON: an object with `error`).
        """
    )

    @Argument(help: "The signal string.")
    var string: String

    @Option(help: "Read the string as tcf, gpp or usp (default: guessed).")
    var kind: SignalKind?

    @Option(help: ArgumentHelp("Decode the string as one GPP section's text: 2 (tcfeuv2), 6 (uspv1), 7 (usnat), 8–12 (usca, usva, usco, usut, usct).", valueName: "ID"))
    var section: Int?

    @Option(help: "text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        if section != nil && kind != nil { throw ValidationError("--section and --kind cannot be combined") }
        if let section, !GPPSectionId.isDecoded(section) {
            throw ValidationError("--section \(section): consentd decodes sections 2, 6 and 7–12")
        }
    }

    func decode() throws(SignalError) -> SignalValue {
        if let section { return try SignalReport.decodeSection(string, id: section) }
        return try SignalReport.decode(string, as: kind)
    }

    func run() throws {
        do throws(SignalError) {
            let report = try decode()
            print(format == .json ? JSONOutput.encode(report) : report.text(), terminator: format == .json ? "\n" : "")
        } catch {
            if format == .json {
                let kindName = section != nil ? "gpp" : (kind ?? SignalReport.guessKind(string)).rawValue
                print(JSONOutput.encode(SignalValue.object([
                    SignalField("kind", .string(kindName)),
                    SignalField("error", .object([
                        SignalField("message", .string(error.description)),
                        SignalField("segment", .string("\(error.segment)")),
                        SignalField("field", .string("\(error.field)")),
                        SignalField("bit_offset", .int(error.bitOffset)),
                    ] + (error.gppSection.map { [SignalField("section_id", .int($0))] } ?? []))),
                ])))
            }
            printError("Error: \(error)")
            throw ExitCode(1)
        }
    }
}
