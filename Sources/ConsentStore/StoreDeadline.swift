/// One bound on everything a store operation does, however many steps it takes: a consent write
/// the daemon must answer within its clients' timeouts waits for the connection, connects, runs
/// its statements and brings the index up to date under one deadline, instead of under one bound
/// per step, in turn. The PostgreSQL store reads it (`PostgresLink`); a step that would need more
/// time than is left is not begun — a statement is sent only with its whole bound still ahead,
/// so that it is never cut short after the server may have committed it.
///
/// Bound on the calling thread (a task-local, also set in synchronous code), for the blocking
/// call that runs inside `within`.
public enum StoreDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?

    /// Runs `body` with a deadline `budget` from now (or the earlier one already set).
    public static func within<T>(_ budget: Duration, _ body: () throws -> T) rethrows -> T {
        let proposed = ContinuousClock.now + budget
        let deadline = current.map { min($0, proposed) } ?? proposed
        return try $current.withValue(deadline, operation: body)
    }

    /// Time left before the deadline (nil: none set).
    static var remaining: Duration? { current.map { $0 - ContinuousClock.now } }
}
