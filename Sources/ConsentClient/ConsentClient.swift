import ConsentModel
import ConsentWire
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A client for one connection to consentd's Unix socket.
///
/// Blocking, with a timeout on every wait; one connection per instance. Requests can be
/// pipelined: `send` many, `flush`, and `receive` responses, matching them by id — the daemon
/// answers decisions in order but consent writes may overtake them. For deep pipelines, one
/// thread may `send`/`flush` while another `receive`s (the daemon stops reading from a peer that
/// does not read its answers); otherwise use an instance from one thread at a time.
public final class ConsentClient: @unchecked Sendable {
    private var fd: Int32
    private var outbound: [UInt8] = []
    /// Received bytes live in `inbound[inboundStart..<inboundEnd]`; the rest is free space.
    private var inbound = [UInt8](repeating: 0, count: 65536)
    private var inboundStart = 0
    private var inboundEnd = 0
    private var nextID: UInt64 = 1
    private let timeoutMilliseconds: Int32
    /// The socket path this client is connected to.
    public let socketPath: String
    /// Largest response frame accepted.
    public var maximumFrameSize = 64 << 20

    /// Connects to the daemon at `socketPath`, waiting at most `timeout` seconds for each answer.
    public init(socketPath: String, timeout: Double = 5) throws {
        self.socketPath = socketPath
        self.timeoutMilliseconds = Int32(max(1, min(timeout * 1000, Double(Int32.max))))
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConsentClientError(.connect, "cannot create a socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            _ = closeSocket(fd)
            throw ConsentClientError(.connect, "socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let error = errno
            _ = closeSocket(fd)
            let hint = error == ENOENT || error == ECONNREFUSED ? " (is consentd running? start it with `consentd`)" : ""
            throw ConsentClientError(.connect, "cannot connect to \(socketPath): \(String(cString: strerror(error)))\(hint)")
        }
        var noSigPipe: Int32 = 1
        #if os(macOS)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &noSigPipe, socklen_t(MemoryLayout<Int32>.size))
        #endif
        _ = noSigPipe
        outbound.reserveCapacity(4096)
    }

    deinit { if fd >= 0 { _ = closeSocket(fd) } }

    /// The process id of the daemon at the other end (SO_PEERCRED), where the system says.
    public var peerProcessID: Int32? {
        #if os(Linux)
        guard fd >= 0 else { return nil }
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.pid > 0 else { return nil }
        return credentials.pid
        #else
        return nil
        #endif
    }

    /// Closes the connection.
    public func close() {
        if fd >= 0 { _ = closeSocket(fd) }
        fd = -1
    }

    /// Whether the connection is open.
    public var isConnected: Bool { fd >= 0 }

    /// A fresh request id.
    public func makeID() -> UInt64 {
        defer { nextID &+= 1 }
        return nextID
    }

    // MARK: pipelining

    /// Queues a request (assigning an id if it has none); returns its id. Call `flush` to send.
    @discardableResult
    public func send(_ request: Consentd_V1_Request) throws -> UInt64 {
        var request = request
        if request.id == 0 { request.id = makeID() }
        let payload: [UInt8] = try request.serializedBytes()
        FrameCodec.appendVarint(UInt64(payload.count), to: &outbound)
        outbound.append(contentsOf: payload)
        return request.id
    }

    /// Queues raw bytes (for tests of the daemon's error handling).
    public func sendRaw(_ bytes: [UInt8]) { outbound.append(contentsOf: bytes) }

    /// Writes every queued request.
    public func flush() throws {
        guard fd >= 0 else { throw ConsentClientError(.disconnected, "the connection is closed") }
        var offset = 0
        while offset < outbound.count {
            let written = outbound.withUnsafeBytes { buffer in
                sendBytes(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { try wait(for: Int16(POLLOUT)); continue }
                // Answers the daemon sent before it closed stay readable: the socket is left
                // open for `receive` (which reports the end of the stream after them).
                let message = String(cString: strerror(errno))
                outbound.removeAll(keepingCapacity: true)
                throw ConsentClientError(.disconnected, "the daemon closed the connection (\(message))")
            }
            offset += written
        }
        outbound.removeAll(keepingCapacity: true)
    }

    /// The next response.
    public func receive() throws -> Consentd_V1_Response {
        try receiveFrame { payload in
            do {
                return try Consentd_V1_Response(serializedBytes: RawBytes(payload))
            } catch {
                close()
                throw ConsentClientError(.protocolViolation, "the daemon sent a frame that is not a consentd.v1.Response: \(error)")
            }
        }
    }

    /// Whether a whole frame is already buffered (so `receive` would not block).
    public var hasBufferedFrame: Bool {
        let available = inboundEnd - inboundStart
        guard available > 0 else { return false }
        let prefix = inbound.withUnsafeBytes { FrameCodec.readPrefix(UnsafeRawBufferPointer(rebasing: $0[inboundStart..<inboundEnd])) }
        if case let .length(length, prefixBytes) = prefix { return available >= prefixBytes && UInt64(available - prefixBytes) >= length }
        return false
    }

    /// Waits for the next frame and hands its payload to `body` without copying (for callers
    /// that parse responses themselves, like load generators).
    public func receiveFrame<T>(_ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        while true {
            let available = inboundEnd - inboundStart
            if available > 0 {
                let prefix = inbound.withUnsafeBytes { FrameCodec.readPrefix(UnsafeRawBufferPointer(rebasing: $0[inboundStart..<inboundEnd])) }
                switch prefix {
                case .malformed:
                    close()
                    throw ConsentClientError(.protocolViolation, "the daemon sent an invalid length prefix")
                case let .length(length, prefixBytes):
                    guard length <= UInt64(maximumFrameSize) else {
                        close()
                        throw ConsentClientError(.protocolViolation, "the daemon sent a \(length)-byte frame, over the client's limit")
                    }
                    let needed = prefixBytes + Int(length)
                    if available >= needed {
                        let start = inboundStart + prefixBytes
                        inboundStart += needed
                        defer { if inboundStart == inboundEnd { inboundStart = 0; inboundEnd = 0 } }
                        return try inbound.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<start + Int(length)])) }
                    }
                    try makeRoom(for: needed)
                case .incomplete:
                    try makeRoom(for: 16)
                }
            }
            try fill()
        }
    }

    /// Queues a request given as its serialized body without the id: the id field is prepended
    /// (protobuf fields may come in any order), so a load generator can reuse encoded requests.
    public func send(id: UInt64, encodedBody body: [UInt8]) {
        let length = 1 + FrameCodec.varintSize(id) + body.count
        FrameCodec.appendVarint(UInt64(length), to: &outbound)
        outbound.append(0x08)
        FrameCodec.appendVarint(id, to: &outbound)
        outbound.append(contentsOf: body)
    }

    /// Bytes queued and not yet flushed.
    public var pendingBytes: Int { outbound.count }

    /// Ensures `needed` bytes fit from `inboundStart`: moves pending bytes to the front, then grows.
    private func makeRoom(for needed: Int) throws {
        if inboundStart + needed <= inbound.count { return }
        if inboundStart > 0 {
            let pending = inboundEnd - inboundStart
            inbound.withUnsafeMutableBytes { buffer in
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + inboundStart, byteCount: pending)
            }
            inboundStart = 0
            inboundEnd = pending
        }
        if needed > inbound.count {
            var capacity = inbound.count
            while capacity < needed { capacity *= 2 }
            inbound += [UInt8](repeating: 0, count: capacity - inbound.count)
        }
    }

    private func fill() throws {
        guard fd >= 0 else { throw ConsentClientError(.disconnected, "the connection is closed") }
        if inboundEnd == inbound.count { try makeRoom(for: inboundEnd - inboundStart + 4096) }
        try wait(for: Int16(POLLIN))
        let end = inboundEnd
        let received = inbound.withUnsafeMutableBytes { buffer in
            recv(fd, buffer.baseAddress! + end, buffer.count - end, 0)
        }
        if received <= 0 {
            if received < 0 && (errno == EINTR || errno == EAGAIN) { return }
            let reason = received == 0 ? "the daemon closed the connection" : "connection error: \(String(cString: strerror(errno)))"
            close()
            throw ConsentClientError(.disconnected, reason)
        }
        inboundEnd += received
    }

    private func wait(for events: Int16) throws {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let ready = poll(&descriptor, 1, timeoutMilliseconds)
            if ready > 0 { return }
            if ready == 0 { throw ConsentClientError(.timeout, "no answer from \(socketPath) within \(timeoutMilliseconds) ms") }
            if errno != EINTR { throw ConsentClientError(.disconnected, "poll failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// Sends one request and waits for its response (others received meanwhile are discarded;
    /// use `send`/`receive` to pipeline).
    public func call(_ request: Consentd_V1_Request) throws -> Consentd_V1_Response {
        let id = try send(request)
        try flush()
        while true {
            let response = try receive()
            if response.id == id { return response }
        }
    }

    // MARK: typed calls

    func expect<T>(_ response: Consentd_V1_Response, _ extract: (Consentd_V1_Response.OneOf_Result) -> T?) throws -> T {
        if case let .error(error)? = response.result {
            throw ConsentClientError(.server(error.code), error.message)
        }
        guard let result = response.result, let value = extract(result) else {
            throw ConsentClientError(.unexpectedResponse, "the daemon answered with a different method's response")
        }
        return value
    }

    /// May `purpose` use `dataCategory` for `subject`?
    public func check(subject: String, purpose: String, dataCategory: String, context: RequestContext = RequestContext(), explain: Bool = false) throws -> Consentd_V1_CheckResponse {
        var request = Consentd_V1_Request()
        request.check = Consentd_V1_CheckRequest.with {
            $0.subjectID = subject
            $0.purpose = purpose
            $0.dataCategory = dataCategory
            $0.context = Consentd_V1_Context(context)
            $0.explain = explain
        }
        return try expect(call(request)) { if case let .check(value) = $0 { value } else { nil } }
    }

    /// Many questions sharing one context, answered in order.
    public func checkBatch(_ items: [(subject: String, purpose: String, dataCategory: String)], context: RequestContext = RequestContext()) throws -> Consentd_V1_CheckBatchResponse {
        var request = Consentd_V1_Request()
        request.checkBatch = Consentd_V1_CheckBatchRequest.with {
            $0.items = items.map { item in Consentd_V1_CheckItem.with { $0.subjectID = item.subject; $0.purpose = item.purpose; $0.dataCategory = item.dataCategory } }
            $0.context = Consentd_V1_Context(context)
        }
        return try expect(call(request)) { if case let .checkBatch(value) = $0 { value } else { nil } }
    }

    /// Every allowed (purpose, data category) pair for a subject.
    public func listUses(subject: String, context: RequestContext = RequestContext()) throws -> Consentd_V1_ListUsesResponse {
        var request = Consentd_V1_Request()
        request.listUses = Consentd_V1_ListUsesRequest.with {
            $0.subjectID = subject
            $0.context = Consentd_V1_Context(context)
        }
        return try expect(call(request)) { if case let .listUses(value) = $0 { value } else { nil } }
    }

    /// Appends consent records; returns once they are durable and visible to the next Check.
    /// Stores the records a CMP's signal string implies for its customer (see `SignalConsent` in
    /// the protocol); `sequences` is empty when the string implies none.
    public func record(signal: SignalConsent, idempotencyKey: String? = nil) throws -> Consentd_V1_RecordConsentResponse {
        var request = Consentd_V1_Request()
        request.recordConsent = Consentd_V1_RecordConsentRequest.with {
            $0.signal = Consentd_V1_SignalConsent(signal)
            $0.idempotencyKey = idempotencyKey ?? ""
        }
        return try expect(call(request)) { if case let .recordConsent(value) = $0 { value } else { nil } }
    }

    public func record(_ records: [ConsentRecord], idempotencyKey: String? = nil) throws -> Consentd_V1_RecordConsentResponse {
        var request = Consentd_V1_Request()
        request.recordConsent = Consentd_V1_RecordConsentRequest.with {
            $0.records = records.map { record in
                var wire = Consentd_V1_ConsentRecord(record)
                wire.sequence = 0
                return wire
            }
            $0.idempotencyKey = idempotencyKey ?? ""
        }
        return try expect(call(request)) { if case let .recordConsent(value) = $0 { value } else { nil } }
    }

    /// A subject's records (or its state as of `at`) and erasure tombstones.
    public func history(subject: String, at: Timestamp? = nil) throws -> Consentd_V1_HistoryResponse {
        var request = Consentd_V1_Request()
        request.history = Consentd_V1_HistoryRequest.with {
            $0.subjectID = subject
            if let at { $0.at = Google_Protobuf_Timestamp(at) }
        }
        return try expect(call(request)) { if case let .history(value) = $0 { value } else { nil } }
    }

    /// Erases a subject.
    public func erase(subject: String) throws -> Consentd_V1_EraseSubjectResponse {
        var request = Consentd_V1_Request()
        request.eraseSubject = Consentd_V1_EraseSubjectRequest.with { $0.subjectID = subject }
        return try expect(call(request)) { if case let .eraseSubject(value) = $0 { value } else { nil } }
    }

    /// The daemon's status.
    public func status() throws -> Consentd_V1_StatusResponse {
        var request = Consentd_V1_Request()
        request.status = Consentd_V1_StatusRequest()
        return try expect(call(request)) { if case let .status(value) = $0 { value } else { nil } }
    }
}

private func closeSocket(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #else
    Darwin.close(fd)
    #endif
}

private func sendBytes(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if os(Linux)
    send(fd, pointer, count, Int32(MSG_NOSIGNAL))
    #else
    send(fd, pointer, count, 0)
    #endif
}
