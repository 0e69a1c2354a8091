import ConsentModel
import PolicyEngine

/// One decision reported to a caller, as the counters, the metrics and the receipts consume it
/// (`RequestProcessor.decided`): what was asked, when, what was decided, and from which store
/// sequence. A Check makes one, a CheckBatch one per item, a ListUses one per use it reports.
///
/// The allocation-free paths describe the request by its bytes (views into the frame); the
/// general path by its decoded strings. Neither is copied unless a receipt is written.
struct DecisionEvent {
    enum Asked {
        case bytes(
            subject: UnsafeRawBufferPointer, purpose: UnsafeRawBufferPointer, dataCategory: UnsafeRawBufferPointer,
            jurisdiction: UnsafeRawBufferPointer?, channel: UnsafeRawBufferPointer?
        )
        case strings(subject: String, purpose: String, dataCategory: String, jurisdiction: String?, channel: String?)
    }

    /// Which request made the decision (a receipt's `kind`).
    enum Kind {
        case check, batch, listUses

        var name: StaticString {
            switch self {
            case .check: "check"
            case .batch: "batch"
            case .listUses: "list_uses"
            }
        }
    }

    var asked: Asked
    var gpc: Bool
    var uspOptOut: Bool
    /// The instant the request asked to decide at, if it gave one.
    var requestedAt: Timestamp?
    /// When the decision was made; nil: now (read only if a receipt needs it).
    var decidedAt: Timestamp?
    var decision: Decision
    /// The consent-store sequence the decision read.
    var sequence: UInt64
    var kind: Kind
}
