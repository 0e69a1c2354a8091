import ArgumentParser
import ConsentStore
import ConsentWire

/// `consentctl consent erase SUBJECT`
struct ConsentErase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Delete every record of a subject (right to erasure), keeping only a tombstone.",
        discussion: """
        The tombstone holds a keyed hash (HMAC-SHA256) of the subject id, the time and the number \
        of records deleted: enough to prove the erasure to someone who knows the id, nothing that \
        identifies the person. `history SUBJECT` shows it.
        """
    )

    @Argument(help: "The data subject's id.")
    var subject: String

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        if let client = try storeOptions.client() {
            let tombstone = try daemonCall { try client.erase(subject: subject) }.tombstone
            print("erased \(tombstone.recordCount) records of \(subject) at \(tombstone.erasedAt.model) (#\(tombstone.sequence), tombstone \(tombstone.subjectHash.prefix(16))…)")
            return
        }
        let store = try storeOptions.open()
        do {
            let tombstone = try store.erase(subject: subject, now: .now())
            print("erased \(tombstone.recordCount) records of \(subject) at \(tombstone.erasedAt) (#\(tombstone.sequence), tombstone \(tombstone.subjectHash.prefix(16))…)")
        } catch let error as StoreError {
            printError("consentctl: \(error)")
            throw ExitCode(error.code == .invalidRecord ? 1 : 74)
        }
    }
}
