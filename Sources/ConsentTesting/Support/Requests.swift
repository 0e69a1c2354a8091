import ConsentModel
import ConsentWire
import Foundation
import Synchronization

/// A policy key of the shipped taxonomy many tests decide about.
public let measurement = "marketing.advertising.measurement"

/// A request with an id.
public func request(_ id: UInt64, _ body: (inout Consentd_V1_Request) -> Void) -> Consentd_V1_Request {
    var request = Consentd_V1_Request()
    request.id = id
    body(&request)
    return request
}

public func checkRequest(_ id: UInt64, _ subject: String, _ purpose: String, _ data: String, jurisdiction: String = "DE") -> Consentd_V1_Request {
    request(id) {
        $0.check = Consentd_V1_CheckRequest.with {
            $0.subjectID = subject
            $0.purpose = purpose
            $0.dataCategory = data
            $0.context.jurisdiction = jurisdiction
        }
    }
}

public func grant(_ subject: String, _ purpose: String, _ choice: Choice = .grant, notice: UInt32 = 3) -> ConsentRecord {
    ConsentRecord(subject: subject, purpose: purpose, choice: choice, recordedAt: .now(), source: "test", noticeVersion: notice)
}

/// Runs blocking work (socket I/O with the blocking client) on threads of its own, so it never
/// occupies the few threads of Swift's cooperative pool that the daemon's services and other
/// tests running in parallel need. `body` is called once per thread with its index.
public func offThePool<T: Sendable>(threads: Int = 1, _ body: @escaping @Sendable (Int) throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: T.self) { group in
        for index in 0..<threads {
            group.addTask {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                    let thread = Thread { continuation.resume(with: Result { try body(index) }) }
                    thread.stackSize = 1 << 20
                    thread.start()
                }
            }
        }
        var results: [T] = []
        for try await result in group { results.append(result) }
        return results
    }
}

/// A count several threads add to.
public final class Tally: Sendable {
    public let value = Atomic<Int>(0)

    public init() {}
}
