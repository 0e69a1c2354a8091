import Logging
import ServiceLifecycle

/// Applies other processes' writes to the consent store to the index, as a Service.
struct ConsentFollower: Service {
    let state: ServerState

    func run() async throws {
        let interval = Duration.milliseconds(Int64(max(state.configuration.storePollInterval, 0.001) * 1000))
        let logger = state.logger
        await cancelWhenGracefulShutdown {
            await state.feed.follow(every: interval) { error in
                logger.error("cannot follow the consent store; retrying", metadata: ["error": "\(error)"])
            }
        }
    }
}
