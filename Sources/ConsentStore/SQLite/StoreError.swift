/// A consent-store failure, with a code callers can branch on and a message for people.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    public enum Code: String, Sendable {
        /// A record failed validation (empty subject, bad key, expiry before recording, …).
        case invalidRecord = "invalid_record"
        /// The database could not be opened or migrated.
        case unavailable
        /// SQLite reported an error (disk full, I/O error, lock timeout, corruption, …).
        case database
        /// An import or export file problem.
        case file
        /// An idempotency key was used before for a different request.
        case idempotencyConflict = "idempotency_conflict"
        /// The database at the store's address is another consent store now (another store id:
        /// dropped and recreated, restored from another store's backup). A follower loads it whole.
        case storeChanged = "store_changed"
        /// Key ids a writer cached name other keys in the database now (restored from an older
        /// backup of the same store): nothing was written; look them up again.
        case staleKeyIDs = "stale_key_ids"
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in plain words.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
