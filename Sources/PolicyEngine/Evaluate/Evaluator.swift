import ConsentModel

/// What happened to one rule during a decision, for `explain`.
public enum RuleOutcome: Hashable, Sendable, CustomStringConvertible {
    case purposeNotCovered
    case dataNotCovered
    case jurisdictionNotMatched
    case channelNotMatched
    /// A prohibition whose `unless` held.
    case prohibitionLifted
    /// A prohibition that matched.
    case prohibitionMatched
    /// A permission whose requirement held, with the allow reason.
    case permissionHeld(ReasonCode)
    /// A permission that matched but did not hold, with the deny reason.
    case permissionUnmet(ReasonCode)

    public var description: String {
        switch self {
        case .purposeNotCovered: "not applicable: purpose not covered"
        case .dataNotCovered: "not applicable: data category not covered"
        case .jurisdictionNotMatched: "not applicable: jurisdiction not matched"
        case .channelNotMatched: "not applicable: channel not matched"
        case .prohibitionLifted: "prohibition lifted by its `unless`"
        case .prohibitionMatched: "prohibition matched"
        case let .permissionHeld(reason): "permission held (\(reason))"
        case let .permissionUnmet(reason): "permission matched but not met (\(reason))"
        }
    }
}

/// Receives the steps of an evaluation. The hot path uses `NoTrace`, whose empty inlined
/// methods compile away; `explain` uses `TraceRecorder`.
protocol DecisionTracer {
    mutating func rule(_ index: Int32, _ outcome: RuleOutcome)
    mutating func record(_ index: Int, covers: Bool, valid: Bool)
    mutating func effective(_ index: Int?)
}

struct NoTrace: DecisionTracer {
    @inline(__always) mutating func rule(_ index: Int32, _ outcome: RuleOutcome) {}
    @inline(__always) mutating func record(_ index: Int, covers: Bool, valid: Bool) {}
    @inline(__always) mutating func effective(_ index: Int?) {}
}

/// Specificity of a matched rule: deeper purpose key, then deeper data key, then earlier rule.
struct Specificity {
    var rule: Int32 = -1
    var purposeDepth: Int32 = -1
    var dataDepth: Int32 = -1

    @inline(__always)
    func isBeaten(by rule: Int32, _ purposeDepth: Int32, _ dataDepth: Int32) -> Bool {
        if self.rule < 0 { return true }
        if purposeDepth != self.purposeDepth { return purposeDepth > self.purposeDepth }
        if dataDepth != self.dataDepth { return dataDepth > self.dataDepth }
        return rule < self.rule
    }
}

extension PolicySet {
    /// Resolves a request's names against this set. Fails with `UNKNOWN_PURPOSE`,
    /// `UNKNOWN_DATA_CATEGORY` or `INVALID_REQUEST` (bad subject or jurisdiction).
    public func resolve(_ request: DecisionRequest, now: Timestamp) -> Result<ResolvedRequest, DecisionFailure> {
        guard DecisionRequest.isValidSubject(request.subject) else { return .failure(DecisionFailure(.invalidRequest)) }
        guard let purpose = purposes.id(of: request.purpose) else { return .failure(DecisionFailure(.unknownPurpose)) }
        guard let data = dataCategories.id(of: request.dataCategory) else { return .failure(DecisionFailure(.unknownDataCategory)) }
        guard let jurisdictionClass = jurisdictions.classOf(request.context.jurisdiction) else { return .failure(DecisionFailure(.invalidRequest)) }
        var channelBit: UInt64 = 1 << 63
        if let channel = request.context.channel {
            guard RequestContext.isValidChannel(channel) else { return .failure(DecisionFailure(.invalidRequest)) }
            if let bit = channelTable[channel] { channelBit = bit }  // by bytes, as the fast path
        }
        var signals: UInt8 = 0
        if request.context.gpc { signals |= RequestSignal.gpc.bit }
        if request.context.uspOptOut { signals |= RequestSignal.uspOptOut.bit }
        if signals != 0, saleOrSharing[Int(purpose)] { signals |= RequestSignal.saleOptOut.bit }
        return .success(ResolvedRequest(
            purpose: purpose, dataCategory: data, jurisdictionClass: jurisdictionClass,
            channelBit: channelBit, signals: signals, at: request.context.at ?? now
        ))
    }

    /// Resolves a request whose names are given as UTF-8 bytes (straight from a wire frame), for
    /// the allocation-free path. Returns nil whenever the general path must decide: an unknown
    /// or unlisted key or jurisdiction (so that every error and normalisation stays in one place).
    @inline(__always)
    public func resolve(
        purposeBytes: UnsafeRawBufferPointer, dataBytes: UnsafeRawBufferPointer, jurisdictionBytes: UnsafeRawBufferPointer?,
        channelBytes: UnsafeRawBufferPointer?, gpc: Bool, uspOptOut: Bool, at: Timestamp
    ) -> ResolvedRequest? {
        guard let purpose = purposes.id(ofBytes: purposeBytes), let data = dataCategories.id(ofBytes: dataBytes) else { return nil }
        var jurisdictionClass = JurisdictionTable.unlisted
        if let jurisdictionBytes, jurisdictionBytes.count > 0 {
            guard let listed = jurisdictions.classOf(bytes: jurisdictionBytes) else { return nil }
            jurisdictionClass = listed
        }
        var channelBit: UInt64 = 1 << 63
        if let channelBytes, channelBytes.count > 0 {
            // A channel over the limit (or with control bytes) is the general path's INVALID_REQUEST.
            guard channelBytes.count <= RequestContext.maximumChannelBytes, Identifier.isPrintableASCII(bytes: channelBytes) else { return nil }
            if let bit = channelTable.lookup(channelBytes) { channelBit = bit }
        }
        var signals: UInt8 = 0
        if gpc { signals |= RequestSignal.gpc.bit }
        if uspOptOut { signals |= RequestSignal.uspOptOut.bit }
        if signals != 0, saleOrSharing[Int(purpose)] { signals |= RequestSignal.saleOptOut.bit }
        return ResolvedRequest(purpose: purpose, dataCategory: data, jurisdictionClass: jurisdictionClass, channelBit: channelBit, signals: signals, at: at)
    }

    /// Decides a request for a subject whose records are `consent` (compact records in this set's
    /// vocabulary, any order). Pure: the same inputs give the same decision.
    public func decide(_ request: DecisionRequest, consent: ArraySlice<CompactRecord>, now: Timestamp) -> Decision {
        switch resolve(request, now: now) {
        case let .success(resolved): return decide(resolved, consent: consent)
        case let .failure(failure): return .deny(failure.reason)
        }
    }

    /// Decides an already resolved request. No allocation, no string work.
    public func decide(_ request: ResolvedRequest, consent: ArraySlice<CompactRecord>) -> Decision {
        var tracer = NoTrace()
        return evaluate(request, consent: consent, tracer: &tracer)
    }

    /// Decides an already resolved request over records held in a buffer (the index's
    /// retain-free lookup). No allocation, no string work.
    public func decide(_ request: ResolvedRequest, records: UnsafeBufferPointer<CompactRecord>) -> Decision {
        var tracer = NoTrace()
        return evaluate(request, consent: records, tracer: &tracer)
    }

    /// The effective consent for the request's purpose, data category and instant.
    @inline(__always)
    func effectiveConsent<T: DecisionTracer, Records: RandomAccessCollection>(_ request: ResolvedRequest, _ consent: Records, _ tracer: inout T) -> EffectiveConsent
        where Records.Element == CompactRecord, Records.Index == Int {
        var result = EffectiveConsent()
        var bestIndex: Int?
        for index in consent.indices {
            let record = consent[index]
            let covers = purposes.covers(record.purpose, request.purpose)
                && (record.dataCategory == CompactRecord.allData || dataCategories.covers(record.dataCategory, request.dataCategory))
            guard covers else {
                tracer.record(index - consent.startIndex, covers: false, valid: false)
                continue
            }
            guard record.recordedAt <= request.at else {
                tracer.record(index - consent.startIndex, covers: true, valid: false)
                continue
            }
            guard request.at < record.expiresAt else {
                if record.choice == .grant { result.sawExpiredGrant = true }
                tracer.record(index - consent.startIndex, covers: true, valid: false)
                continue
            }
            tracer.record(index - consent.startIndex, covers: true, valid: true)
            if let best = result.record {
                let later = record.recordedAt > best.recordedAt
                    || (record.recordedAt == best.recordedAt
                        && ((record.choice == .deny && best.choice == .grant)
                            || (record.choice == best.choice && record.sequence > best.sequence)))
                if !later { continue }
            }
            result.record = record
            bestIndex = index - consent.startIndex
        }
        tracer.effective(bestIndex)
        return result
    }

    func evaluate<T: DecisionTracer, Records: RandomAccessCollection>(_ request: ResolvedRequest, consent: Records, tracer: inout T) -> Decision
        where Records.Element == CompactRecord, Records.Index == Int {
        let purposeIndex = Int(request.purpose)
        let start = Int(candidateStart[purposeIndex])
        let end = start + Int(candidateCount[purposeIndex])
        var prohibition = Specificity()
        var held = Specificity()
        var heldReason = ReasonCode.noMatchingRule
        var unmet = Specificity()
        var unmetReason = ReasonCode.noMatchingRule
        var effective = EffectiveConsent()
        var computedConsent = false

        var candidateIndex = start
        while candidateIndex < end {
            let candidate = candidates[candidateIndex]
            candidateIndex += 1
            let ruleIndex = Int(candidate.rule)
            let rule = cores[ruleIndex]
            guard jurisdictions.accepts(class: request.jurisdictionClass, rule: ruleIndex) else {
                tracer.rule(candidate.rule, .jurisdictionNotMatched)
                continue
            }
            guard rule.channelMask & request.channelBit != 0 else {
                tracer.rule(candidate.rule, .channelNotMatched)
                continue
            }
            var dataDepth: Int32 = 0
            if rule.dataCount > 0 {
                var key = Int(rule.dataStart)
                let keyEnd = key + Int(rule.dataCount)
                while key < keyEnd {
                    let id = ruleData[key]
                    if dataCategories.covers(id, request.dataCategory) { dataDepth = max(dataDepth, Int32(dataCategories.depth(id))) }
                    key += 1
                }
                guard dataDepth > 0 else {
                    tracer.rule(candidate.rule, .dataNotCovered)
                    continue
                }
            }
            let signalsHold = rule.hasUnless
                && request.signals & rule.unlessSignalsTrue == rule.unlessSignalsTrue
                && request.signals & rule.unlessSignalsFalse == 0

            if rule.effect == .deny {
                if signalsHold {
                    var lifted = true
                    if rule.unlessConsent {
                        if !computedConsent { effective = effectiveConsent(request, consent, &tracer); computedConsent = true }
                        lifted = effective.record?.choice == .grant
                    }
                    if lifted {
                        tracer.rule(candidate.rule, .prohibitionLifted)
                        continue
                    }
                }
                tracer.rule(candidate.rule, .prohibitionMatched)
                if prohibition.isBeaten(by: candidate.rule, candidate.purposeDepth, dataDepth) {
                    prohibition = Specificity(rule: candidate.rule, purposeDepth: candidate.purposeDepth, dataDepth: dataDepth)
                }
                continue
            }

            // A permission: its `unless` signals defeat it before its requirement is checked.
            var outcome: ReasonCode
            if signalsHold {
                outcome = .optedOutBySignal
            } else if rule.requirementKind == 2 {
                outcome = .legalBasis
            } else {
                if !computedConsent { effective = effectiveConsent(request, consent, &tracer); computedConsent = true }
                if rule.requirementKind == 1 {
                    outcome = effective.record?.choice == .deny ? .consentDenied : .notOptedOut
                } else if let record = effective.record {
                    if record.choice == .deny {
                        outcome = .consentDenied
                    } else if rule.maxAge > 0 && Self.age(of: record, at: request.at) > rule.maxAge {
                        outcome = .consentStale
                    } else if rule.minNotice > 0 && (record.noticeVersion == CompactRecord.noNotice || record.noticeVersion < rule.minNotice) {
                        outcome = .consentStale
                    } else {
                        outcome = .consentGranted
                    }
                } else {
                    outcome = effective.sawExpiredGrant ? .consentExpired : .noConsent
                }
            }
            if outcome.isAllow {
                tracer.rule(candidate.rule, .permissionHeld(outcome))
                if held.isBeaten(by: candidate.rule, candidate.purposeDepth, dataDepth) {
                    held = Specificity(rule: candidate.rule, purposeDepth: candidate.purposeDepth, dataDepth: dataDepth)
                    heldReason = outcome
                }
            } else {
                tracer.rule(candidate.rule, .permissionUnmet(outcome))
                if unmet.isBeaten(by: candidate.rule, candidate.purposeDepth, dataDepth) {
                    unmet = Specificity(rule: candidate.rule, purposeDepth: candidate.purposeDepth, dataDepth: dataDepth)
                    unmetReason = outcome
                }
            }
        }

        if prohibition.rule >= 0 {
            return Decision(effect: .deny, reason: .prohibited, ruleIndex: prohibition.rule)
        }
        if held.rule >= 0 {
            let core = cores[Int(held.rule)]
            switch heldReason {
            case .legalBasis:
                return Decision(effect: .allow, reason: .legalBasis, ruleIndex: held.rule, legalBasis: core.basis)
            default:
                return Decision(effect: .allow, reason: heldReason, ruleIndex: held.rule, record: effective.record, legalBasis: .consent)
            }
        }
        if unmet.rule >= 0 {
            let record = unmetReason == .consentDenied || unmetReason == .consentStale ? effective.record : nil
            return Decision(effect: .deny, reason: unmetReason, ruleIndex: unmet.rule, record: record)
        }
        if defaultEffect == .allow {
            return Decision(effect: .allow, reason: .noMatchingRule, legalBasis: nil)
        }
        return Decision(effect: .deny, reason: .noMatchingRule)
    }
}

/// Why a request could not be evaluated against the set.
public struct DecisionFailure: Error, Hashable, Sendable {
    /// `UNKNOWN_PURPOSE`, `UNKNOWN_DATA_CATEGORY` or `INVALID_REQUEST`.
    public var reason: ReasonCode
    init(_ reason: ReasonCode) { self.reason = reason }
}

extension PolicySet {
    /// How long before `instant` the record was made, in microseconds; saturates at `Int64.max`
    /// instead of wrapping (a wrapped age would make an ancient grant look fresh).
    @inline(__always)
    static func age(of record: CompactRecord, at instant: Timestamp) -> Int64 {
        let (age, overflow) = instant.microseconds.subtractingReportingOverflow(record.recordedAt.microseconds)
        return overflow ? (instant.microseconds > record.recordedAt.microseconds ? .max : .min) : age
    }
}
