import ArgumentParser

/// `consentctl consent …`
struct ConsentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent",
        abstract: "Record, inspect, import, export and erase consent in a store file.",
        discussion: """
        These commands work directly on the SQLite store file (default ./consentd.sqlite), which \
        may be shared with a running daemon: its writes are durable when the command returns and \
        a daemon following the file picks them up.
        """,
        subcommands: [
            ConsentGrant.self, ConsentDeny.self, ConsentWithdraw.self, ConsentSignal.self, ConsentHistory.self, ConsentErase.self,
            ConsentImport.self, ConsentExport.self, ConsentGenerate.self,
        ]
    )
}
