import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The optional Prometheus listener: plain HTTP/1.1, `GET /metrics` only, text exposition format.
public final class MetricsServer: Service, Sendable {
    let state: ServerState
    let metrics: DaemonMetrics
    let address: MetricsAddress
    let group: EventLoopGroup
    private let bound = Mutex<Result<SocketAddress, Error>?>(nil)
    private let waiting = Mutex<[CheckedContinuation<SocketAddress, Error>]>([])

    init(state: ServerState, metrics: DaemonMetrics, address: MetricsAddress, group: EventLoopGroup) {
        self.state = state
        self.metrics = metrics
        self.address = address
        self.group = group
    }

    /// The address actually bound (its port when the configured port was 0), once listening.
    public func waitUntilListening() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            let result = bound.withLock { result -> Result<SocketAddress, Error>? in
                if let result { return result }
                waiting.withLock { $0.append(continuation) }
                return nil
            }
            if let result { continuation.resume(with: result) }
        }
    }

    private func signal(_ result: Result<SocketAddress, Error>) {
        let continuations = bound.withLock { bound -> [CheckedContinuation<SocketAddress, Error>] in
            bound = result
            return waiting.withLock { list in defer { list = [] }; return list }
        }
        for continuation in continuations { continuation.resume(with: result) }
    }

    public func run() async throws {
        let channel: Channel
        do {
            let state = self.state
            let metrics = self.metrics
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handlers = channel.pipeline.syncOperations
                        try handlers.configureHTTPServerPipeline(withErrorHandling: true)
                        try handlers.addHandler(MetricsHTTPHandler(state: state, metrics: metrics))
                    }
                }
                .bind(host: address.host, port: address.port)
                .get()
        } catch {
            let failure = StartupError(description: "cannot listen for metrics on \(address): \(error)")
            signal(.failure(failure))
            throw failure
        }
        let local = channel.localAddress!
        if let port = local.port, let ip = local.ipAddress {
            state.metricsAddress = (ip.contains(":") ? "[\(ip)]" : ip) + ":\(port)"
        } else {
            state.metricsAddress = "\(local)"
        }
        state.logger.info("metrics listening", metadata: ["address": "\(local)"])
        signal(.success(local))
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// Answers `GET /metrics` with the exposition; anything else with 404 or 405.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let state: ServerState
    let metrics: DaemonMetrics
    private var head: HTTPRequestHead?

    init(state: ServerState, metrics: DaemonMetrics) {
        self.state = state
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let status: HTTPResponseStatus
            let contentType: String
            var body = context.channel.allocator.buffer(capacity: 0)
            if head.method != .GET && head.method != .HEAD {
                status = .methodNotAllowed
                contentType = "text/plain; charset=utf-8"
                body.writeString("only GET /metrics\n")
            } else if path == "/metrics" {
                status = .ok
                contentType = "text/plain; version=0.0.4; charset=utf-8"
                // A scrape reads snapshots and atomics; it never waits on the store.
                body.writeBytes(metrics.scrape(state))
            } else {
                status = .notFound
                contentType = "text/plain; charset=utf-8"
                body.writeString("consentd serves Prometheus metrics at /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            let keepAlive = head.isKeepAlive
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
