import ConsentModel
import ConsentSignals

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
    /// A rule whose outcome depends on a signal string that cannot be read.
    case signalUnknown
    /// A rule whose outcome depends on consent records the daemon cannot vouch are current.
    case consentUnavailable

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
        case .signalUnknown: "depends on a signal string that cannot be read (INVALID_SIGNAL)"
        case .consentUnavailable: "depends on consent records that are not known to be current (CONSENT_UNAVAILABLE)"
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
    /// `UNKNOWN_DATA_CATEGORY` or `INVALID_REQUEST` (bad subject or jurisdiction). Signal strings
    /// on the request are read here; a caller deciding many items of one request reads them once
    /// (`withSignals`) and passes them to `resolve(_:now:signals:)`.
    public func resolve(_ request: DecisionRequest, now: Timestamp) -> Result<ResolvedRequest, DecisionFailure> {
        switch resolveNames(request) {
        case let .failure(failure): return .failure(failure)
        case let .success(names):
            let at = request.context.at ?? now
            guard request.context.hasSignalStrings else {
                let bits = signalBits(names.purpose, names.data, gpc: request.context.gpc, uspOptOut: request.context.uspOptOut)
                return .success(ResolvedRequest(purpose: names.purpose, dataCategory: names.data, jurisdictionClass: names.jurisdictionClass, channelBit: names.channelBit, signals: bits.signals, at: at))
            }
            return .success(withSignals(request.context) { resolved(names.purpose, names.data, names.jurisdictionClass, names.channelBit, at, $0) })
        }
    }

    /// `resolve` with the request's signals already read (`withSignals`).
    public func resolve(_ request: DecisionRequest, now: Timestamp, signals assessment: borrowing SignalAssessment) -> Result<ResolvedRequest, DecisionFailure> {
        switch resolveNames(request) {
        case let .failure(failure): return .failure(failure)
        case let .success(names):
            return .success(resolved(names.purpose, names.data, names.jurisdictionClass, names.channelBit, request.context.at ?? now, assessment))
        }
    }

    @inline(__always)
    func resolveNames(_ request: DecisionRequest) -> Result<(purpose: UInt32, data: UInt32, jurisdictionClass: Int32, channelBit: UInt64), DecisionFailure> {
        guard DecisionRequest.isValidSubject(request.subject) else { return .failure(DecisionFailure(.invalidRequest)) }
        guard let purpose = purposes.id(of: request.purpose) else { return .failure(DecisionFailure(.unknownPurpose)) }
        guard let data = dataCategories.id(of: request.dataCategory) else { return .failure(DecisionFailure(.unknownDataCategory)) }
        guard let jurisdictionClass = jurisdictions.classOf(request.context.jurisdiction) else { return .failure(DecisionFailure(.invalidRequest)) }
        var channelBit: UInt64 = 1 << 63
        if let channel = request.context.channel {
            guard RequestContext.isValidChannel(channel) else { return .failure(DecisionFailure(.invalidRequest)) }
            if let bit = channelTable[channel] { channelBit = bit }  // by bytes, as the fast path
        }
        guard request.context.gppSectionIds.count <= RequestContext.maximumGPPSectionIds else { return .failure(DecisionFailure(.invalidRequest)) }
        if let vendor = request.context.tcfVendorId, vendor > RequestContext.maximumTCFVendorId { return .failure(DecisionFailure(.invalidRequest)) }
        return .success((purpose, data, jurisdictionClass, channelBit))
    }

    /// Why `request` is denied `INVALID_REQUEST`, in words for the answer's message; nil when it is
    /// not. The same checks as `resolveNames`, in its order, through the same predicates.
    public func invalidRequestProblem(_ request: DecisionRequest) -> String? {
        if let problem = Identifier.subjectProblem(request.subject) { return problem }
        guard purposes.id(of: request.purpose) != nil, dataCategories.id(of: request.dataCategory) != nil else { return nil }
        let context = request.context
        if let jurisdiction = context.jurisdiction, jurisdictions.classOf(jurisdiction) == nil {
            return "context.jurisdiction \(Identifier.excerpt(jurisdiction)) is not an ISO 3166 code (a country such as DE, or a subdivision such as US-CA)"
        }
        if let channel = context.channel, !RequestContext.isValidChannel(channel) {
            return "context.channel " + (Identifier.problem(channel, maximum: RequestContext.maximumChannelBytes) ?? "is not valid")
        }
        if context.gppSectionIds.count > RequestContext.maximumGPPSectionIds {
            return "context.gpp_sid names \(context.gppSectionIds.count) sections; the limit is \(RequestContext.maximumGPPSectionIds)"
        }
        if let vendor = context.tcfVendorId, vendor > RequestContext.maximumTCFVendorId {
            return "context.tcf_vendor_id \(vendor) is not a TCF vendor id (1 to \(RequestContext.maximumTCFVendorId))"
        }
        return nil
    }

    /// The request's ids with what its signals say for this purpose and data category.
    @inline(__always)
    func resolved(_ purpose: UInt32, _ data: UInt32, _ jurisdictionClass: Int32, _ channelBit: UInt64, _ at: Timestamp, _ assessment: borrowing SignalAssessment) -> ResolvedRequest {
        let bits = signalBits(
            purpose, data, gpc: assessment.gpc, uspOptOut: assessment.uspOptOut, gppSaleOptOut: assessment.gppSaleOptOut,
            targetedAdvertisingOptOut: assessment.targetedAdvertisingOptOut, sensitiveOptOuts: assessment.sensitiveOptOuts,
            uspUnknown: assessment.uspUnknown, usUnknown: assessment.usUnknown
        )
        var request = ResolvedRequest(purpose: purpose, dataCategory: data, jurisdictionClass: jurisdictionClass, channelBit: channelBit, signals: bits.signals, at: at)
        request.unknownSignals = bits.unknown
        let mapped = tcfPurposes[Int(purpose)]
        if assessment.tcfApplies, mapped != 0 {
            if let tc = assessment.tcf {
                request.signalRecord = tcfRecord(tc, purpose: purpose, mapped: mapped, feature: Int(tcfSpecialFeature[Int(data)]), at: at)
            } else if assessment.tcfUnknown {
                request.consentUnknown = true
            }
        }
        return request
    }

    /// The one place a request's signals become `unless` bits for a purpose and data category,
    /// and the bits a malformed string leaves unknown.
    @inline(__always)
    func signalBits(
        _ purpose: UInt32, _ data: UInt32, gpc: Bool, uspOptOut: Bool, gppSaleOptOut: Bool = false,
        targetedAdvertisingOptOut: Bool = false, sensitiveOptOuts: SensitiveMasks = SensitiveMasks(), uspUnknown: Bool = false, usUnknown: Bool = false
    ) -> (signals: UInt8, unknown: UInt8) {
        var signals: UInt8 = 0
        var unknown: UInt8 = 0
        if gpc { signals |= RequestSignal.gpc.bit }
        if uspOptOut { signals |= RequestSignal.uspOptOut.bit }
        if saleOrSharing[Int(purpose)] {
            if gpc || uspOptOut || gppSaleOptOut { signals |= RequestSignal.saleOptOut.bit }
            if uspUnknown || usUnknown { unknown |= RequestSignal.saleOptOut.bit }
        }
        if targetedAdvertisingOptOut { signals |= RequestSignal.targetedAdvertisingOptOut.bit }
        if !sensitiveOptOuts.isEmpty {
            let positions = gppSensitive[Int(data)]
            for section in SensitivePositions.sections {
                let position = positions[section]
                if position > 0, sensitiveOptOuts[section] & (1 << UInt32(position - 1)) != 0 {
                    signals |= RequestSignal.sensitiveDataOptOut.bit
                }
            }
        }
        if uspUnknown { unknown |= RequestSignal.uspOptOut.bit }
        if usUnknown { unknown |= RequestSignal.targetedAdvertisingOptOut.bit | RequestSignal.sensitiveDataOptOut.bit }
        // A signal already known present does not become unknown because another string could
        // also have set it.
        return (signals, unknown & ~signals)
    }

    /// A TC string grants a purpose when every TCF purpose it maps to has purpose consent and no
    /// publisher restriction of type 0 (not allowed) for the vendor, the vendor has consent, and
    /// a data category mapped to a special feature has that feature's opt-in. A grant is a choice
    /// made at the string's LastUpdated; anything else is the customer's no, now.
    /// A grant dated after the decision instant (a skewed browser clock, or a replay of an earlier
    /// instant) is not a choice made by then, as a stored record would not be: it does not count.
    @inline(__always)
    func tcfRecord(_ tc: TCFChoice, purpose: UInt32, mapped: UInt32, feature: Int, at: Timestamp) -> CompactRecord? {
        var grants = tc.grants(purposes: UInt64(mapped))
        if grants && feature > 0 && !tc.specialFeatureOptIn(feature) { grants = false }
        if grants && tc.lastUpdatedMicroseconds > at.microseconds { return nil }
        return CompactRecord(
            purpose: purpose, choice: grants ? .grant : .deny,
            recordedAt: grants ? Timestamp(microseconds: tc.lastUpdatedMicroseconds) : at,
            source: CompactRecord.tcfSource
        )
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
        let bits = signalBits(purpose, data, gpc: gpc, uspOptOut: uspOptOut)
        return ResolvedRequest(purpose: purpose, dataCategory: data, jurisdictionClass: jurisdictionClass, channelBit: channelBit, signals: bits.signals, at: at)
    }

    /// `resolve(purposeBytes:…)` for a request carrying signal strings, read beforehand from the
    /// frame's bytes into `signals` (once per request, shared by a batch's items).
    @inline(__always)
    public func resolve(
        purposeBytes: UnsafeRawBufferPointer, dataBytes: UnsafeRawBufferPointer, jurisdictionBytes: UnsafeRawBufferPointer?,
        channelBytes: UnsafeRawBufferPointer?, at: Timestamp, signals: borrowing SignalAssessment
    ) -> ResolvedRequest? {
        guard let plain = resolve(
            purposeBytes: purposeBytes, dataBytes: dataBytes, jurisdictionBytes: jurisdictionBytes, channelBytes: channelBytes,
            gpc: false, uspOptOut: false, at: at
        ) else { return nil }
        return resolved(plain.purpose, plain.dataCategory, plain.jurisdictionClass, plain.channelBit, at, signals)
    }

    /// Decides a request for a subject whose records are `consent` (compact records in this set's
    /// vocabulary, any order). Pure: the same inputs give the same decision.
    /// - Parameter consentAvailable: false when the records may not be current (the daemon's
    ///   store is stale): every outcome that would look at them is `CONSENT_UNAVAILABLE`.
    public func decide(_ request: DecisionRequest, consent: ArraySlice<CompactRecord>, now: Timestamp, consentAvailable: Bool = true) -> Decision {
        switch resolve(request, now: now) {
        case var .success(resolved):
            resolved.consentUnavailable = !consentAvailable
            return decide(resolved, consent: consent)
        case let .failure(failure): return .deny(failure.reason)
        }
    }

    /// `decide` with the request's signals already read (`withSignals`), as a caller deciding
    /// many items of one request does.
    public func decide(_ request: DecisionRequest, consent: ArraySlice<CompactRecord>, now: Timestamp, signals: borrowing SignalAssessment,
                       consentAvailable: Bool = true) -> Decision {
        switch resolve(request, now: now, signals: signals) {
        case var .success(resolved):
            resolved.consentUnavailable = !consentAvailable
            return decide(resolved, consent: consent)
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
        // The signal's choice stands beside the stored ones: the latest wins, a deny on a tie.
        if let signal = request.signalRecord {
            if let best = result.record {
                if signal.recordedAt > best.recordedAt || (signal.recordedAt == best.recordedAt && signal.choice == .deny && best.choice == .grant) {
                    result.record = signal
                    bestIndex = -1
                }
            } else {
                result.record = signal
                bestIndex = -1
            }
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
        /// The most specific permission and prohibition whose outcome a malformed signal string
        /// leaves unknown.
        var unknown = Specificity()
        var unknownProhibition = Specificity()
        /// Why each of those is unknown: INVALID_SIGNAL, or CONSENT_UNAVAILABLE when only the
        /// consent records (not a signal) are in doubt.
        var unknownReason = ReasonCode.invalidSignal
        var unknownProhibitionReason = ReasonCode.invalidSignal

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
            // The `unless` signals, three-valued: a malformed string leaves some unknown, but a
            // signal known present or a condition already failed by a known one settles it.
            let unknownBits = request.unknownSignals
            let andFails = rule.unlessSignalsTrue & ~unknownBits & ~request.signals != 0 || rule.unlessSignalsFalse & request.signals != 0
            let andUnknown = (rule.unlessSignalsTrue | rule.unlessSignalsFalse) & unknownBits != 0
            let anyHolds = rule.unlessSignalsAny == 0 || rule.unlessSignalsAny & request.signals != 0
            let anyUnknown = !anyHolds && rule.unlessSignalsAny & unknownBits != 0
            let signalsHold = rule.hasUnless && !andFails && !andUnknown && anyHolds
            var outcomeUnknown = rule.hasUnless && !andFails && (andUnknown || anyUnknown) && (anyHolds || anyUnknown)
            var outcomeReason = ReasonCode.invalidSignal
            // Consent under a TC string that cannot be read, or from a store not known to be
            // current, where this rule would look at consent.
            if request.consentUnknown || request.consentUnavailable {
                let looksAtConsent: Bool
                if rule.effect == .deny {
                    // A prohibition looks at consent only when its signals do not already keep it.
                    looksAtConsent = rule.unlessConsent && (signalsHold || outcomeUnknown)
                } else {
                    // A permission on consent, unless its signals already defeat it.
                    looksAtConsent = rule.requirementKind != 2 && !signalsHold
                }
                if looksAtConsent {
                    if !outcomeUnknown && request.consentUnavailable { outcomeReason = .consentUnavailable }
                    outcomeUnknown = true
                }
            }
            if outcomeUnknown {
                tracer.rule(candidate.rule, outcomeReason == .consentUnavailable ? .consentUnavailable : .signalUnknown)
                if rule.effect == .deny {
                    if unknownProhibition.isBeaten(by: candidate.rule, candidate.purposeDepth, dataDepth) {
                        unknownProhibition = Specificity(rule: candidate.rule, purposeDepth: candidate.purposeDepth, dataDepth: dataDepth)
                        unknownProhibitionReason = outcomeReason
                    }
                } else if unknown.isBeaten(by: candidate.rule, candidate.purposeDepth, dataDepth) {
                    unknown = Specificity(rule: candidate.rule, purposeDepth: candidate.purposeDepth, dataDepth: dataDepth)
                    unknownReason = outcomeReason
                }
                continue
            }

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
                    } else if rule.minNotice > 0 && record.source != CompactRecord.tcfSource
                                && (record.noticeVersion == CompactRecord.noNotice || record.noticeVersion < rule.minNotice) {
                        // A request's TC string's grant was given on the CMP's own notice;
                        // min_notice_version versions the notices behind stored records (synced
                        // ones included: they carry the notice version the sync names).
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
        // A prohibition that might match could deny whatever holds; a permission that might hold
        // matters only when none holds for sure.
        if unknownProhibition.rule >= 0 {
            return Decision(effect: .deny, reason: unknownProhibitionReason, ruleIndex: unknownProhibition.rule)
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
        if unknown.rule >= 0 {
            return Decision(effect: .deny, reason: unknownReason, ruleIndex: unknown.rule)
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
