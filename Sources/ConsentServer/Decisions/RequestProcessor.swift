import ConsentModel
import ConsentReceipts
import ConsentSignals
import ConsentStore
import ConsentWire
import Logging
import NIOCore
import PolicyEngine
import SwiftProtobuf

/// Answers decoded requests for one connection. Decisions are answered inline from snapshots;
/// consent administration is returned as work for a blocking thread pool.
///
/// No I/O of its own and no NIO: the channel handler feeds it requests and writes what it returns.
package struct RequestProcessor {
    package let services: RequestServices
    private var policies: PolicyReader
    private var consent: SnapshotReader
    /// The peer's credentials from SO_PEERCRED, if known.
    package var peer: PeerCredentials? {
        didSet { roles = services.roleMap.roles(of: peer) }
    }
    /// What the peer may do.
    package private(set) var roles: PeerRoles
    /// This connection's receipts, when receipts are on.
    private var receipts: ConnectionReceipts?
    private let metrics: DaemonMetrics?
    /// Pre-encoded response parts for the serving policy set (rebuilt after a reload).
    private var parts: AnswerParts?
    /// Reused buffers of the batch fast path.
    private var batch = ParsedBatch()
    private var batchResolved: [(ResolvedRequest, Range<Int>)] = []
    private var batchDecisions: [Decision] = []
    /// The last TC string the allocation-free path read on this connection (the general path
    /// reads every string afresh: it is the reference the fast path is compared with).
    private let tcfCache = TCFStringCache()

    /// The processor of connection number `connection` (named in its receipts).
    package init(services: RequestServices, connection: UInt64) {
        self.services = services
        self.policies = PolicyReader(services.policies)
        self.consent = SnapshotReader(services.consent)
        self.roles = services.roleMap.roles(of: nil)
        self.metrics = services.metrics
        if let queue = services.receipts {
            receipts = ConnectionReceipts(queue: queue, connection: connection)
        }
    }

    /// Tests and the fuzz target only: decisions are made at this instant instead of now, so that
    /// two paths answering one request at different moments can be compared byte for byte (a TC
    /// string's refusal is a choice made at the decision's instant, and its answer says when).
    package var pinnedNow: Timestamp?

    /// Whether the consent index is known to be current (`IndexFreshness`); when not, decisions
    /// that need consent are denied `CONSENT_UNAVAILABLE`. The one place every path asks.
    @inline(__always)
    private var consentAvailable: Bool { services.consent.freshness.isCurrent }

    /// Set while `resume` answers a request after its wait for `min_sequence`.
    private var waitedForSequence = false

    /// Whether the general path may decide a request whose context names `minimum` against
    /// `snapshot`: `.wait` the first time the index is behind, then `.behind` (decide with
    /// consent unavailable) once the wait is over.
    private func sequenceGate(_ asked: UInt64, _ snapshot: ConsentSnapshot) -> SequenceGate {
        guard requiredSequence(asked) > snapshot.sequence else { return .ready }
        return waitedForSequence ? .behind : .wait
    }

    private enum SequenceGate { case ready, wait, behind }

    /// The sequence a decision must see: the one its context asks for, and every write this
    /// daemon has acknowledged (whose index update may have failed after the commit).
    @inline(__always)
    private func requiredSequence(_ asked: UInt64) -> UInt64 {
        max(asked, services.store?.acknowledgedSequence ?? 0)
    }

    /// What a decision denied because `min_sequence` was not reached says.
    private func behindMessage(_ asked: UInt64, _ snapshot: ConsentSnapshot) -> String {
        "\(asked > snapshot.sequence ? "context.min_sequence \(asked)" : "a write this daemon acknowledged (\(requiredSequence(asked)))") is not applied on this daemon yet (it is at \(snapshot.sequence) after waiting "
            + "\(Int(services.maximumSequenceWait * 1000)) ms): decisions that need consent are denied until it is"
    }

    /// What a `CONSENT_UNAVAILABLE` answer says.
    private var unavailableMessage: String {
        "the daemon's copy of the consent store was last confirmed current \(String(format: "%.1f", services.consent.freshness.ageSeconds)) s ago, "
            + "longer than its bound: decisions that need consent are denied until the store can be read"
    }

    /// The instant of a decision that names none.
    @inline(__always)
    private func now() -> Timestamp { pinnedNow ?? .now() }

    /// The receipt lines encoded since the last flush (for the fuzz target's checks).
    package var pendingReceipts: ReceiptLines? { receipts?.lines }

    /// Hands this frame's receipts to the writer's queue.
    package mutating func flushReceipts() {
        receipts?.flush()
    }

    /// What to do with a request.
    package enum Outcome {
        /// The response, ready now.
        case respond(Consentd_V1_Response)
        /// The response's frame (length prefix included), ready now: Check and CheckBatch
        /// answers, written by `AnswerWriter` as the allocation-free path writes them.
        case respondFrame([UInt8])
        /// Work that blocks (SQLite); run it off the event loop, then send its response.
        case offload(@Sendable () -> Consentd_V1_Response)
        /// The request names a `min_sequence` the index has not reached: wait (without blocking)
        /// until it has or `services.maximumSequenceWait` passed, then `resume` the request.
        case waitForSequence(UInt64)
    }

    /// Answers a plain Check straight from the frame's bytes into `buffer` (see `ParsedCheck`).
    /// Returns false, having written nothing, when the general path must answer.
    package mutating func fastCheck(_ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) -> Bool {
        // A stale index: the general path answers (CONSENT_UNAVAILABLE where consent is needed, with its message).
        guard roles.check, consentAvailable, let check = ParsedCheck.parse(bytes) else { return false }
        receipts?.startRequest()
        let subject = UnsafeRawBufferPointer(rebasing: bytes[check.subject])
        guard Identifier.isPrintableASCII(bytes: subject) else { return false }
        guard check.contextIsWithinLimits else { return false }
        let set = policies.current()
        let at = check.at ?? now()
        let purposeBytes = UnsafeRawBufferPointer(rebasing: bytes[check.purpose]), dataBytes = UnsafeRawBufferPointer(rebasing: bytes[check.data])
        let jurisdictionBytes = check.jurisdiction.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
        let channelBytes = check.channel.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
        let resolvedOrNil: ResolvedRequest?
        if check.hasSignalStrings {
            let signals = Self.signals(of: check, in: bytes, set: set, tcfCache: tcfCache)
            // A string that cannot be read: the general path answers, with the message.
            guard !signals.hasProblem else { return false }
            resolvedOrNil = set.resolve(purposeBytes: purposeBytes, dataBytes: dataBytes, jurisdictionBytes: jurisdictionBytes, channelBytes: channelBytes, at: at, signals: signals)
        } else {
            resolvedOrNil = set.resolve(
                purposeBytes: purposeBytes, dataBytes: dataBytes, jurisdictionBytes: jurisdictionBytes, channelBytes: channelBytes,
                gpc: check.gpc, uspOptOut: check.uspOptOut, at: at
            )
        }
        guard let resolved = resolvedOrNil else { return false }
        let snapshot = consent.current()
        // A write this daemon has not applied yet: the general path waits for it.
        guard requiredSequence(check.minSequence) <= snapshot.sequence else { return false }
        let decision = snapshot.withRecords(ofSubjectBytes: subject) { set.decide(resolved, records: $0) }
        ServerCounters.bump(services.counters.requests)
        var event = DecisionEvent(
            asked: .bytes(Self.asked(subject: subject, purpose: purposeBytes, dataCategory: dataBytes, context: check, in: bytes)),
            gpc: check.gpc, uspOptOut: check.uspOptOut, requestedAt: check.at, decidedAt: check.at == nil ? at : nil,
            decision: decision, sequence: snapshot.sequence, kind: .check
        )
        event.signals = EventSignals(gppSectionMask: check.gppSectionMask, gppSectionCount: check.gppSectionCount, tcfVendorId: check.tcfVendorId)
        decided(event, set: set)
        if !AnswerWriter.writeCheckFrame(id: check.id, answerParts(set).answer(decision, sequence: snapshot.sequence), into: &buffer) {
            buffer.writeBytes(unwritable(check.id))
        }
        return true
    }

    /// A fast-path request's asked fields as views of its frame.
    @inline(__always)
    static func asked(
        subject: UnsafeRawBufferPointer, purpose: UnsafeRawBufferPointer, dataCategory: UnsafeRawBufferPointer,
        context: ParsedCheck, in bytes: UnsafeRawBufferPointer
    ) -> AskedFields {
        func view(_ range: Range<Int>?) -> UnsafeRawBufferPointer? { range.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) } }
        return AskedFields(
            subject: subject, purpose: purpose, dataCategory: dataCategory, jurisdiction: view(context.jurisdiction), channel: view(context.channel),
            tcString: view(context.tcString), gppString: view(context.gppString), usPrivacy: view(context.usPrivacy)
        )
    }

    /// What the signal strings of a context read on the fast path say, read in place from the
    /// frame (the TC string through this connection's cache).
    @inline(__always)
    static func signals(of context: ParsedCheck, in bytes: UnsafeRawBufferPointer, set: PolicySet, tcfCache: TCFStringCache) -> SignalAssessment {
        SignalAssessment(
            gpc: context.gpc, uspOptOut: context.uspOptOut,
            tcString: context.tcString.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) },
            gppString: context.gppString.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) },
            gppSectionMask: context.gppSectionMask, gppSectionIdsGiven: context.gppSectionCount > 0,
            usPrivacy: context.usPrivacy.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) },
            vendorId: set.signalVendor(context.tcfVendorId == 0 ? nil : context.tcfVendorId), tcfCache: tcfCache
        )
    }

    /// The encoded strings of `set` for answers, renewed when a reload swapped the set.
    @inline(__always)
    private mutating func answerParts(_ set: PolicySet) -> AnswerParts {
        if let parts, parts.set === set { return parts }
        let renewed = AnswerParts(set: set)
        parts = renewed
        return renewed
    }

    /// Answers a plain CheckBatch straight from the frame's bytes (see `fastCheck`); all items
    /// are resolved before anything is written, so a decline leaves `buffer` untouched.
    package mutating func fastBatch(_ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) -> Bool {
        guard roles.check, consentAvailable, batch.parse(bytes, maximumItems: services.maximumBatchItems) else { return false }
        receipts?.startRequest()
        let context = batch.context
        guard context.contextIsWithinLimits else { return false }
        let set = policies.current()
        let at = context.at ?? now()
        let jurisdiction = context.jurisdiction.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
        let channel = context.channel.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }
        // The items share the context: its signal strings are read once for the batch.
        let signals: SignalAssessment?
        if context.hasSignalStrings {
            let read = Self.signals(of: context, in: bytes, set: set, tcfCache: tcfCache)
            guard !read.hasProblem else { return false }
            signals = read
        } else {
            signals = nil
        }
        batchResolved.removeAll(keepingCapacity: true)
        for item in batch.items {
            let subject = UnsafeRawBufferPointer(rebasing: bytes[item.subject])
            guard Identifier.isPrintableASCII(bytes: subject) else { return false }
            let purposeBytes = UnsafeRawBufferPointer(rebasing: bytes[item.purpose]), dataBytes = UnsafeRawBufferPointer(rebasing: bytes[item.data])
            let resolvedOrNil = if let signals {
                set.resolve(purposeBytes: purposeBytes, dataBytes: dataBytes, jurisdictionBytes: jurisdiction, channelBytes: channel, at: at, signals: signals)
            } else {
                set.resolve(
                    purposeBytes: purposeBytes, dataBytes: dataBytes, jurisdictionBytes: jurisdiction, channelBytes: channel,
                    gpc: context.gpc, uspOptOut: context.uspOptOut, at: at
                )
            }
            guard let resolved = resolvedOrNil else { return false }
            batchResolved.append((resolved, item.subject))
        }
        let snapshot = consent.current()
        guard requiredSequence(context.minSequence) <= snapshot.sequence else { return false }
        batchDecisions.removeAll(keepingCapacity: true)
        // One instant for every item's receipt (a batch is decided at one time).
        let decidedAt = context.at == nil ? at : (receipts == nil ? nil : now())
        for (index, (resolved, subject)) in batchResolved.enumerated() {
            let subjectBytes = UnsafeRawBufferPointer(rebasing: bytes[subject])
            let decision = snapshot.withRecords(ofSubjectBytes: subjectBytes) { set.decide(resolved, records: $0) }
            let item = batch.items[index]
            var event = DecisionEvent(
                asked: .bytes(Self.asked(
                    subject: subjectBytes, purpose: UnsafeRawBufferPointer(rebasing: bytes[item.purpose]),
                    dataCategory: UnsafeRawBufferPointer(rebasing: bytes[item.data]), context: context, in: bytes
                )),
                gpc: context.gpc, uspOptOut: context.uspOptOut, requestedAt: context.at, decidedAt: decidedAt,
                decision: decision, sequence: snapshot.sequence, kind: .batch
            )
            event.signals = EventSignals(gppSectionMask: context.gppSectionMask, gppSectionCount: context.gppSectionCount, tcfVendorId: context.tcfVendorId)
            decided(event, set: set)
            batchDecisions.append(decision)
        }
        ServerCounters.bump(services.counters.requests)
        let parts = answerParts(set), decisions = batchDecisions
        if !AnswerWriter.writeBatchFrame(
            id: batch.id, policy: parts.policy, consentSequence: snapshot.sequence, count: decisions.count,
            result: { parts.result(decisions[$0]) }, into: &buffer
        ) {
            buffer.writeBytes(unwritable(batch.id))
        }
        return true
    }

    /// An error answer for a frame refused from its shape before anything is decoded: a
    /// CheckBatch or RecordConsent with more entries than allowed, or a group (no consentd.v1
    /// message has one: an unknown field); nil when the frame may be decoded.
    package func refuseOversized(_ bytes: UnsafeRawBufferPointer) -> Consentd_V1_Response? {
        guard let shape = RequestScan.shape(bytes) else { return nil }
        if shape.hasGroup {
            ServerCounters.bump(services.counters.requests)
            return error(shape.id, .unknownField, "the request carries a group field, which consentd.v1 does not have")
        }
        guard let method = shape.method else { return nil }
        let limit = method == "CheckBatch" ? services.maximumBatchItems : ServerConfiguration.maximumRecordsPerWrite
        guard shape.count > limit else { return nil }
        ServerCounters.bump(services.counters.requests)
        let what = method == "CheckBatch" ? "items in one CheckBatch" : "records in one RecordConsent"
        return error(shape.id, .invalidArgument, "\(shape.count) \(what); the limit is \(limit)")
    }

    /// The answer to a frame the decoder refused only because a string is not valid UTF-8: an
    /// error for that request, and the connection stays open (ids must be valid UTF-8; the
    /// frame itself is sound). Nil for any other decoding failure.
    package func refuseInvalidUTF8(_ bytes: UnsafeRawBufferPointer, _ error: Error) -> Consentd_V1_Response? {
        guard let decoding = error as? BinaryDecodingError, decoding == .invalidUTF8, let shape = RequestScan.shape(bytes) else { return nil }
        ServerCounters.bump(services.counters.requests)
        return self.error(shape.id, .invalidArgument, "a string field (a subject id, key, name or consent signal string) is not valid UTF-8, as every protobuf string must be")
    }

    package mutating func process(_ request: Consentd_V1_Request) -> Outcome {
        ServerCounters.bump(services.counters.requests)
        receipts?.startRequest()
        waitedForSequence = false
        return dispatch(request)
    }

    /// Answers a request `process` returned `.waitForSequence` for, once the wait is over
    /// (whether or not the sequence arrived: past the wait, decisions that need consent are
    /// CONSENT_UNAVAILABLE).
    package mutating func resume(_ request: Consentd_V1_Request) -> Outcome {
        // Other requests of the connection were answered meanwhile: this one's receipts begin
        // afresh (its own signals line), as in `process`.
        receipts?.startRequest()
        waitedForSequence = true
        defer { waitedForSequence = false }
        return dispatch(request)
    }

    private mutating func dispatch(_ request: Consentd_V1_Request) -> Outcome {
        let id = request.id
        if request.hasUnknownFieldsAnywhere {
            return .respond(error(id, .unknownField, "the request carries fields this daemon does not know (at any depth, nested messages included); upgrade consentd or drop them"))
        }
        switch request.method {
        case let .check(check)?:
            guard roles.check else { return .respond(permissionDenied(id, "Check")) }
            return self.check(id, check)
        case let .checkBatch(batch)?:
            guard roles.check else { return .respond(permissionDenied(id, "CheckBatch")) }
            return self.checkBatch(id, batch)
        case let .listUses(list)?:
            guard roles.check else { return .respond(permissionDenied(id, "ListUses")) }
            return self.listUses(id, list)
        case .status?:
            guard roles.check else { return .respond(permissionDenied(id, "Status")) }
            return .respond(status(id))
        case let .recordConsent(record)?:
            guard roles.admin else { return .respond(permissionDenied(id, "RecordConsent")) }
            return offload(id) { store, set in try recordConsent(id, record, store: store, set: set) }
        case let .history(history)?:
            guard roles.admin else { return .respond(permissionDenied(id, "History")) }
            return offload(id) { store, _ in try subjectHistory(id, history, store: store.store) }
        case let .eraseSubject(erase)?:
            guard roles.admin else { return .respond(permissionDenied(id, "EraseSubject")) }
            return offload(id) { store, _ in try eraseSubject(id, erase, store: store) }
        case nil:
            return .respond(error(id, .unknownMethod, "the request names no method this daemon knows (an empty or newer `method`)"))
        }
    }

    func error(_ id: UInt64, _ code: Consentd_V1_ErrorCode, _ message: String) -> Consentd_V1_Response {
        Self.refusal(id, code, message, services: services)
    }

    /// Every refused request becomes its wire error here, counted once for Status and metrics.
    static func refusal(_ id: UInt64, _ code: Consentd_V1_ErrorCode, _ message: String, services: RequestServices) -> Consentd_V1_Response {
        ServerCounters.bump(services.counters.errors)
        services.metrics?.refusedRequest(code)
        return .error(id: id, code, message)
    }

    /// The frame of an INTERNAL error for an answer the writer could not write whole (its size
    /// and its writer disagreed: sending it would desynchronise the peer). Never expected; the
    /// fuzz target and the golden vectors hold the writer to its sizes.
    func unwritable(_ id: UInt64) -> [UInt8] {
        services.logger.error("an answer could not be encoded; answered INTERNAL", metadata: ["id": "\(id)"])
        let response = error(id, .internal, "internal error: the answer could not be encoded")
        return FrameCodec.frame((try? response.serializedBytes()) ?? [])
    }

    func permissionDenied(_ id: UInt64, _ method: String) -> Consentd_V1_Response {
        ServerCounters.bump(services.counters.permissionDenied)
        let who = peer.map { "uid \($0.uid) (gid \($0.gid), pid \($0.pid))" } ?? "a peer with unknown credentials"
        let role = roles.check ? "may only check" : "has no role in this daemon's role map"
        return error(id, .permissionDenied, "\(method) is not allowed: \(who) \(role)")
    }

    /// Consent administration, as work for the blocking pool; its failures become refusals.
    func offload(_ id: UInt64, _ work: @escaping @Sendable (ConsentFeed, PolicySet) throws -> Consentd_V1_Response) -> Outcome {
        let services = self.services
        guard let store = services.store else {
            return .respond(error(id, .unavailable, "this daemon has no consent store to administer"))
        }
        return .offload {
            do {
                return try work(store, services.policies.set)
            } catch let error as StoreError {
                let callersFault = error.code == .invalidRecord || error.code == .idempotencyConflict
                // The store failing (a full disk, an I/O error, a lock held too long) is the
                // operator's to see, not only the caller's: nothing was stored.
                if !callersFault { services.logger.error("a consent store operation failed (the error says whether anything was written)", metadata: ["error": "\(error.message)"]) }
                return Self.refusal(id, callersFault ? .invalidArgument : .unavailable, error.message, services: services)
            } catch let error as WireRecordError {
                return Self.refusal(id, .invalidArgument, error.message, services: services)
            } catch {
                services.logger.error("internal error", metadata: ["error": "\(error)"])
                return Self.refusal(id, .internal, "internal error: \(error)", services: services)
            }
        }
    }

    // MARK: decisions (inline)

    /// Every decision reported to a caller passes here once — a Check, each CheckBatch item, each
    /// use ListUses reports — and here only: the Status counters, the metrics and the receipt
    /// (when sampled) all consume this one event.
    @inline(__always)
    mutating func decided(_ event: DecisionEvent, set: PolicySet) {
        let decision = event.decision
        ServerCounters.bump(services.counters.decisions)
        if decision.isAllowed { ServerCounters.bump(services.counters.allowed) } else { ServerCounters.bump(services.counters.denied) }
        metrics?.count(decision)
        guard receipts != nil, receipts!.sample() else { return }
        receipts!.append(event, set: set)
    }

    /// The event of a decision of the general (decoded) path.
    /// `signals` is `EventSignals(context)`, computed once per request (a batch's items share it;
    /// the section ids may be many).
    private func event(
        _ decision: Decision, subject: String, purpose: String, dataCategory: String, context: RequestContext,
        signals: EventSignals, at now: Timestamp, sequence: UInt64, kind: DecisionEvent.Kind
    ) -> DecisionEvent {
        var event = DecisionEvent(
            asked: .strings(subject: subject, purpose: purpose, dataCategory: dataCategory, context: context),
            gpc: context.gpc, uspOptOut: context.uspOptOut, requestedAt: context.at, decidedAt: now,
            decision: decision, sequence: sequence, kind: kind
        )
        event.signals = signals
        return event
    }

    mutating func check(_ id: UInt64, _ check: Consentd_V1_CheckRequest) -> Outcome {
        let context: RequestContext
        do { context = try check.context.model() } catch { return .respond(self.error(id, .invalidArgument, error.message)) }
        let set = policies.current()
        let snapshot = consent.current()
        let gate = sequenceGate(context.minSequence, snapshot)
        if gate == .wait { return .waitForSequence(requiredSequence(context.minSequence)) }
        let consentAvailable = consentAvailable && gate == .ready
        let request = DecisionRequest(subject: check.subjectID, purpose: check.purpose, dataCategory: check.dataCategory, context: context)
        let records = snapshot.records(of: request.subject)
        let now = self.now()
        let decision: Decision
        /// INVALID_SIGNAL's why (which string cannot be read), or INVALID_REQUEST's.
        var message: String?
        var explained: [UInt8]?
        if check.explain {
            var explanation = set.explain(request, consent: records, now: now, consentAvailable: consentAvailable)
            // Every record of the subject is consent history: admins only (as History is).
            if !roles.admin { explanation = explanation.withoutRecordTrace() }
            decision = explanation.decision
            message = decision.reason == .invalidSignal ? explanation.signalProblem : nil
            explained = (try? set.wireExplanation(explanation).serializedBytes()) ?? []
        } else {
            (decision, message) = set.withSignals(context) { signals in
                let decision = set.decide(request, consent: records, now: now, signals: signals, consentAvailable: consentAvailable)
                return (decision, decision.reason == .invalidSignal ? signals.problemMessage : nil)
            }
        }
        if decision.reason == .invalidRequest { message = set.invalidRequestProblem(request) }
        if decision.reason == .consentUnavailable { message = gate == .behind ? behindMessage(context.minSequence, snapshot) : unavailableMessage }
        decided(event(decision, subject: request.subject, purpose: request.purpose, dataCategory: request.dataCategory, context: request.context, signals: EventSignals(context),
                      at: now, sequence: snapshot.sequence, kind: .check), set: set)
        return .respondFrame(AnswerWriter.checkFrame(id: id, answerParts(set).answer(decision, sequence: snapshot.sequence), explanation: explained, message: message) ?? unwritable(id))
    }

    mutating func checkBatch(_ id: UInt64, _ batch: Consentd_V1_CheckBatchRequest) -> Outcome {
        guard batch.items.count <= services.maximumBatchItems else {
            return .respond(error(id, .invalidArgument, "\(batch.items.count) items in one CheckBatch; the limit is \(services.maximumBatchItems)"))
        }
        let context: RequestContext
        do { context = try batch.context.model() } catch { return .respond(self.error(id, .invalidArgument, error.message)) }
        let set = policies.current()
        let snapshot = consent.current()
        let gate = sequenceGate(context.minSequence, snapshot)
        if gate == .wait { return .waitForSequence(requiredSequence(context.minSequence)) }
        let now = self.now()
        var decisions: [Decision] = []
        decisions.reserveCapacity(batch.items.count)
        // The items share one context: its signal strings are read once for the batch.
        let eventSignals = EventSignals(context)
        // The message says why, for the first item denied INVALID_REQUEST and for the signal
        // strings when some item was denied INVALID_SIGNAL.
        let available = consentAvailable && gate == .ready
        let unavailable = gate == .behind ? behindMessage(context.minSequence, snapshot) : unavailableMessage
        let message = set.withSignals(context) { signals in
            var sawInvalidSignal = false, sawUnavailable = false
            var invalidRequest: String?
            for (index, item) in batch.items.enumerated() {
                let request = DecisionRequest(subject: item.subjectID, purpose: item.purpose, dataCategory: item.dataCategory, context: context)
                let decision = set.decide(request, consent: snapshot.records(of: item.subjectID), now: now, signals: signals, consentAvailable: available)
                decided(event(decision, subject: item.subjectID, purpose: item.purpose, dataCategory: item.dataCategory, context: context, signals: eventSignals,
                              at: now, sequence: snapshot.sequence, kind: .batch), set: set)
                decisions.append(decision)
                if decision.reason == .invalidSignal { sawInvalidSignal = true }
                if decision.reason == .consentUnavailable { sawUnavailable = true }
                if decision.reason == .invalidRequest, invalidRequest == nil {
                    invalidRequest = set.invalidRequestProblem(request).map { "items[\(index)]: \($0)" }
                }
            }
            let parts = [invalidRequest, sawInvalidSignal ? signals.problemMessage : nil, sawUnavailable ? unavailable : nil].compactMap { $0 }
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }
        let parts = answerParts(set)
        var frame: [UInt8] = []
        frame.reserveCapacity(64 + 32 * decisions.count + (message?.utf8.count ?? 0))
        guard AnswerWriter.writeBatchFrame(
            id: id, policy: parts.policy, consentSequence: snapshot.sequence, count: decisions.count, message: message,
            result: { parts.result(decisions[$0]) }, into: &frame
        ) else { return .respondFrame(unwritable(id)) }
        return .respondFrame(frame)
    }

    mutating func listUses(_ id: UInt64, _ list: Consentd_V1_ListUsesRequest) -> Outcome {
        if let problem = Identifier.subjectProblem(list.subjectID) {
            return .respond(error(id, .invalidArgument, problem))
        }
        let context: RequestContext
        do { context = try list.context.model() } catch { return .respond(self.error(id, .invalidArgument, error.message)) }
        // A Check answers too many section ids with INVALID_REQUEST; ListUses lists only what is
        // allowed, so it says what is wrong instead of listing nothing.
        if context.gppSectionIds.count > RequestContext.maximumGPPSectionIds {
            return .respond(error(id, .invalidArgument, "context.gpp_sid names \(context.gppSectionIds.count) sections; the limit is \(RequestContext.maximumGPPSectionIds)"))
        }
        if let vendor = context.tcfVendorId, vendor > RequestContext.maximumTCFVendorId {
            return .respond(error(id, .invalidArgument, "context.tcf_vendor_id \(vendor) is not a TCF vendor id (1 to \(RequestContext.maximumTCFVendorId))"))
        }
        let eventSignals = EventSignals(context)
        let set = policies.current()
        let snapshot = consent.current()
        let gate = sequenceGate(context.minSequence, snapshot)
        if gate == .wait { return .waitForSequence(requiredSequence(context.minSequence)) }
        let records = snapshot.records(of: list.subjectID)
        let now = self.now()
        let available = consentAvailable && gate == .ready
        var result = Consentd_V1_ListUsesResponse()
        result.policyRevision = set.revision
        result.consentSequence = snapshot.sequence
        if !available {
            result.message = (gate == .behind ? behindMessage(context.minSequence, snapshot) : unavailableMessage) + " (uses that need consent are not listed)"
        }
        set.withSignals(context) { signals in
            for purpose in set.purposes.leaves {
                for data in set.dataCategories.leaves {
                    let decision = set.decide(DecisionRequest(subject: list.subjectID, purpose: purpose, dataCategory: data, context: context), consent: records, now: now, signals: signals, consentAvailable: available)
                    if decision.reason == .invalidSignal, result.message.isEmpty { result.message = signals.problemMessage ?? "" }
                    guard decision.isAllowed else { continue }
                    decided(event(decision, subject: list.subjectID, purpose: purpose, dataCategory: data, context: context, signals: eventSignals,
                                  at: now, sequence: snapshot.sequence, kind: .listUses), set: set)
                    result.uses.append(Consentd_V1_Use.with {
                        $0.purpose = purpose
                        $0.dataCategory = data
                        $0.reason = Consentd_V1_Reason(decision.reason)
                        if decision.ruleIndex >= 0 {
                            $0.ruleID = set.rules[Int(decision.ruleIndex)].id
                            $0.obligations = set.rules[Int(decision.ruleIndex)].obligations
                        }
                        if let basis = decision.legalBasis { $0.legalBasis = Consentd_V1_LegalBasis(basis) }
                    })
                }
            }
        }
        var response = Consentd_V1_Response()
        response.id = id
        response.listUses = result
        return .respond(response)
    }

    func status(_ id: UInt64) -> Consentd_V1_Response {
        var status = services.status()
        status.callerRoles = roles.names
        var response = Consentd_V1_Response()
        response.id = id
        response.status = status
        return response
    }
}

// MARK: administration (blocking; run on the thread pool)

private func recordConsent(_ id: UInt64, _ request: Consentd_V1_RecordConsentRequest, store: ConsentFeed, set: PolicySet) throws -> Consentd_V1_Response {
    let now = Timestamp.now()
    let records: [ConsentRecord]
    if request.hasSignal {
        guard request.records.isEmpty else { throw WireRecordError(message: "RecordConsent takes records or a signal, not both") }
        if let problem = Identifier.subjectProblem(request.signal.subjectID) { throw WireRecordError(message: "signal: \(problem)") }
        // May be none (a US string that opts out of nothing): then nothing is stored and no
        // idempotency key is claimed (a key is erased with the records it stored).
        records = try impliedRecords(request.signal.model, set: set, now: now)
    } else {
        guard !request.records.isEmpty else { throw WireRecordError(message: "RecordConsent needs at least one record (or a signal)") }
        guard request.records.count <= ServerConfiguration.maximumRecordsPerWrite else {
            throw WireRecordError(message: "\(request.records.count) records in one RecordConsent; the limit is \(ServerConfiguration.maximumRecordsPerWrite)")
        }
        records = try request.records.enumerated().map { index, wire in
            do { return try wire.model(now: now) } catch let error as WireRecordError {
                throw WireRecordError(message: "records[\(index)]: \(error.message)")
            }
        }
    }
    for (index, record) in records.enumerated() {
        let name = request.hasSignal ? "signal: the record for \(record.purpose)\(record.dataCategory.map { " [\($0)]" } ?? "")" : "records[\(index)]"
        // The store's own checks, here so that the error names the record.
        do { try store.store.validate(record, now: now) } catch let error as StoreError {
            throw WireRecordError(message: "\(name): \(error.message)")
        }
        if let problem = set.keyProblem(purpose: record.purpose, dataCategory: record.dataCategory) {
            throw WireRecordError(message: "\(name): \(problem)")
        }
    }
    // The idempotency fingerprint is the request as sent (before `recorded_at` defaults to now),
    // so a retry of the same request matches and a different request under the same key does not:
    // each record, length-prefixed, or a signal after a 0 byte (no record is empty).
    var payload: [UInt8] = []
    if !request.idempotencyKey.isEmpty {
        if request.hasSignal { payload = try request.signal.idempotencyPayload() }
        for wire in request.records {
            let bytes: [UInt8] = try wire.serializedBytes()
            FrameCodec.appendVarint(UInt64(bytes.count), to: &payload)
            payload += bytes
        }
    }
    let result = try store.record(records, idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey,
                                       payload: request.idempotencyKey.isEmpty ? nil : payload, now: now)
    var response = Consentd_V1_Response()
    response.id = id
    response.recordConsent = Consentd_V1_RecordConsentResponse.with {
        $0.sequences = result.sequences
        $0.replayed = result.replayed
        $0.consentSequence = store.appliedSequence
    }
    return response
}

/// The records a signal implies, or the refusal that says why it cannot be stored.
private func impliedRecords(_ signal: SignalConsent, set: PolicySet, now: Timestamp) throws(WireRecordError) -> [ConsentRecord] {
    do {
        return try set.records(implying: signal, now: now)
    } catch {
        throw WireRecordError(message: "signal: \(error.message)")
    }
}

private func subjectHistory(_ id: UInt64, _ request: Consentd_V1_HistoryRequest, store: any ConsentStorage) throws -> Consentd_V1_Response {
    let records = try request.hasAt ? store.history(of: request.subjectID, asOf: request.at.model(field: "at")) : store.history(of: request.subjectID)
    let erasures = try store.erasures(of: request.subjectID)
    var response = Consentd_V1_Response()
    response.id = id
    response.history = Consentd_V1_HistoryResponse.with {
        $0.records = records.map(Consentd_V1_ConsentRecord.init)
        $0.erasures = erasures.map(\.wire)
    }
    return response
}

private func eraseSubject(_ id: UInt64, _ request: Consentd_V1_EraseSubjectRequest, store: ConsentFeed) throws -> Consentd_V1_Response {
    let tombstone = try store.erase(subject: request.subjectID)
    var response = Consentd_V1_Response()
    response.id = id
    response.eraseSubject = Consentd_V1_EraseSubjectResponse.with { $0.tombstone = tombstone.wire }
    return response
}
