import ConsentModel
import ConsentWire
import ConsentWorkload
import Foundation
import SwiftProtobuf

/// The kinds of request a bench run mixes.
enum RequestKind: String, CaseIterable, Sendable {
    case check
    case batch
    case listUses = "list_uses"
    case record
}

/// `check=90,batch=5,list_uses=4,record=1`: relative weights of each request kind.
struct WorkloadMix: Equatable, Sendable, CustomStringConvertible {
    var weights: [RequestKind: Int]

    static let checksOnly = WorkloadMix(weights: [.check: 100])

    init(weights: [RequestKind: Int]) { self.weights = weights }

    /// Parses `kind=weight,…`; kinds are check, batch, list_uses, record.
    init(parsing text: String) throws {
        var weights: [RequestKind: Int] = [:]
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let kind = RequestKind(rawValue: pieces[0]) else {
                throw BenchUsageError("--mix entry '\(part)' is not kind=weight with kind one of \(RequestKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let weight = Int(pieces[1]), weight >= 0 else {
                throw BenchUsageError("--mix weight '\(pieces[1])' for \(kind.rawValue) must be a whole number ≥ 0")
            }
            guard weights[kind] == nil else { throw BenchUsageError("--mix names \(kind.rawValue) twice") }
            weights[kind] = weight
        }
        guard weights.values.reduce(0, +) > 0 else { throw BenchUsageError("--mix needs at least one positive weight") }
        self.weights = weights
    }

    var description: String {
        RequestKind.allCases.compactMap { kind in weights[kind].flatMap { $0 > 0 ? "\(kind.rawValue)=\($0)" : nil } }.joined(separator: ",")
    }

    /// Picks a kind with probability proportional to its weight.
    func pick(_ rng: inout SplitMix64) -> RequestKind {
        let total = weights.values.reduce(0, +)
        var roll = Int(rng.next() % UInt64(total))
        for kind in RequestKind.allCases {
            let weight = weights[kind] ?? 0
            if roll < weight { return kind }
            roll -= weight
        }
        return .check
    }
}

struct BenchUsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}


/// The signal strings requests carry: each request draws one of each kind given.
struct SignalChoices: Sendable {
    var tcStrings: [String] = []
    var gppStrings: [String] = []
    var usPrivacy: [String] = []
}

/// A pre-encoded request (its body without the id) and how many decisions it asks for.
struct EncodedRequest: Sendable {
    var kind: RequestKind
    var body: [UInt8]
    var decisions: Int
}

/// Builds a pool of distinct, realistic requests over the taxonomy and the subject population,
/// encoded once so that the load loop spends its time on the socket, not on encoding.
struct RequestPool: Sendable {
    let requests: [EncodedRequest]

    /// `signals`: the signal strings requests' contexts carry (none by default).
    init(
        mix: WorkloadMix, subjects: [String], purposes: [String], dataCategories: [String], batchSize: Int, listUsesDecisions: Int,
        size: Int = 4096, seed: UInt64, signals: SignalChoices = SignalChoices()
    ) throws {
        var rng = SplitMix64(seed: seed)
        let jurisdictions = ["DE", "FR", "NL", "GB", "US-CA", "US-TX", "US-ME", "US-NY", "US-WY", "JP", ""]
        func subject() -> String {
            rng.next() % 10 == 0 || subjects.isEmpty ? "unknown-\(rng.next() % 1_000_000)" : subjects[Int(rng.next() % UInt64(subjects.count))]
        }
        func context() -> Consentd_V1_Context {
            Consentd_V1_Context.with {
                $0.jurisdiction = jurisdictions[Int(rng.next() % UInt64(jurisdictions.count))]
                $0.gpc = rng.next() % 10 == 0
                $0.tcString = signals.tcStrings.isEmpty ? "" : signals.tcStrings[Int(rng.next() % UInt64(signals.tcStrings.count))]
                $0.gppString = signals.gppStrings.isEmpty ? "" : signals.gppStrings[Int(rng.next() % UInt64(signals.gppStrings.count))]
                $0.usPrivacy = signals.usPrivacy.isEmpty ? "" : signals.usPrivacy[Int(rng.next() % UInt64(signals.usPrivacy.count))]
            }
        }
        var pool: [EncodedRequest] = []
        pool.reserveCapacity(size)
        for _ in 0..<size {
            var request = Consentd_V1_Request()
            let kind = mix.pick(&rng)
            var decisions = 1
            switch kind {
            case .check:
                request.check = Consentd_V1_CheckRequest.with {
                    $0.subjectID = subject()
                    $0.purpose = purposes[Int(rng.next() % UInt64(purposes.count))]
                    $0.dataCategory = dataCategories[Int(rng.next() % UInt64(dataCategories.count))]
                    $0.context = context()
                }
            case .batch:
                request.checkBatch = Consentd_V1_CheckBatchRequest.with {
                    $0.items = (0..<batchSize).map { _ in
                        Consentd_V1_CheckItem.with {
                            $0.subjectID = subject()
                            $0.purpose = purposes[Int(rng.next() % UInt64(purposes.count))]
                            $0.dataCategory = dataCategories[Int(rng.next() % UInt64(dataCategories.count))]
                        }
                    }
                    $0.context = context()
                }
                decisions = batchSize
            case .listUses:
                request.listUses = Consentd_V1_ListUsesRequest.with {
                    $0.subjectID = subject()
                    $0.context = context()
                }
                decisions = listUsesDecisions
            case .record:
                let choice: Consentd_V1_Choice = rng.next() % 4 == 0 ? .deny : .grant
                let target = subject()
                let purpose = purposes[Int(rng.next() % UInt64(purposes.count))]
                request.recordConsent = Consentd_V1_RecordConsentRequest.with {
                    $0.records = [Consentd_V1_ConsentRecord.with {
                        $0.subjectID = target
                        $0.purpose = purpose
                        $0.choice = choice
                        $0.source = "bench"
                    }]
                }
                decisions = 0
            }
            pool.append(EncodedRequest(kind: kind, body: try request.serializedBytes(), decisions: decisions))
        }
        requests = pool
    }
}

/// What the load loop needs from a response, read straight from the wire format without
/// building the message: its id, whether it is an error (and which), and the allow/deny counts.
struct ResponseSummary {
    var id: UInt64 = 0
    var errorCode: Int = 0
    var allowed = 0
    var denied = 0

    /// Scans a `consentd.v1.Response`. For the echo floor the same scan runs over the echoed
    /// request (it finds the id and nothing else), so both sides pay the same client cost.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> ResponseSummary? {
        var summary = ResponseSummary()
        var reader = WireReader(bytes: bytes)
        while let (field, wireType) = reader.tag() {
            switch (field, wireType) {
            case (1, 0):
                guard let id = reader.varint() else { return nil }
                summary.id = id
            case (2, 2):  // CheckResponse
                guard let inner = reader.lengthDelimited() else { return nil }
                let decision = WireReader.firstVarint(field: 1, in: inner)
                if decision == 1 { summary.allowed += 1 } else if decision == 2 { summary.denied += 1 }
            case (3, 2):  // CheckBatchResponse: repeated CheckResult results = 1
                guard let inner = reader.lengthDelimited() else { return nil }
                var batch = WireReader(bytes: inner)
                while let (innerField, innerType) = batch.tag() {
                    if innerField == 1 && innerType == 2 {
                        guard let result = batch.lengthDelimited() else { return nil }
                        let decision = WireReader.firstVarint(field: 1, in: result)
                        if decision == 1 { summary.allowed += 1 } else if decision == 2 { summary.denied += 1 }
                    } else if !batch.skip(innerType) { return nil }
                }
            case (15, 2):  // Error
                guard let inner = reader.lengthDelimited() else { return nil }
                summary.errorCode = Int(WireReader.firstVarint(field: 1, in: inner) ?? 0)
                if summary.errorCode == 0 { summary.errorCode = -1 }
            default:
                if !reader.skip(wireType) { return nil }
            }
        }
        return summary
    }
}

/// Minimal protobuf wire-format reading.
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    mutating func tag() -> (Int, Int)? {
        guard position < bytes.count, let key = varint() else { return nil }
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func lengthDelimited() -> UnsafeRawBufferPointer? {
        guard let length = varint(), position + Int(length) <= bytes.count else { return nil }
        defer { position += Int(length) }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + Int(length)])
    }

    mutating func skip(_ wireType: Int) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1: position += 8; return position <= bytes.count
        case 2: return lengthDelimited() != nil
        case 5: position += 4; return position <= bytes.count
        default: return false
        }
    }

    static func firstVarint(field: Int, in bytes: UnsafeRawBufferPointer) -> UInt64? {
        var reader = WireReader(bytes: bytes)
        while let (number, wireType) = reader.tag() {
            if number == field && wireType == 0 { return reader.varint() }
            if !reader.skip(wireType) { return nil }
        }
        return nil
    }
}

/// The open-loop schedule: request k of a connection is due at `start + k / rate`, and its
/// latency is measured from that instant (so a stalled daemon cannot hide its queueing delay —
/// coordinated omission corrected, as wrk2 does).
struct OpenLoopSchedule: Sendable {
    let start: UInt64
    let intervalNanoseconds: Double

    init(start: UInt64, ratePerSecond: Double) {
        self.start = start
        self.intervalNanoseconds = 1e9 / ratePerSecond
    }

    func intendedTime(of index: UInt64) -> UInt64 {
        start + UInt64((Double(index) * intervalNanoseconds).rounded())
    }
}
