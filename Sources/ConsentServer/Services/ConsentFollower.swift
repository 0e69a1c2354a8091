import ConsentStore
import Logging
import ServiceLifecycle

/// Applies other processes' writes to the consent store to the index, as a Service.
struct ConsentFollower: Service {
    let feed: ConsentFeed
    /// Seconds between looks at the store.
    let interval: Double
    let logger: Logger

    func run() async throws {
        let interval = Duration.milliseconds(Int64(max(interval, 0.001) * 1000))
        let feed = feed, logger = logger
        await cancelWhenGracefulShutdown {
            await feed.follow(every: interval) { error in
                logger.error("cannot follow the consent store; retrying", metadata: ["error": "\(error)"])
            }
        }
    }
}
