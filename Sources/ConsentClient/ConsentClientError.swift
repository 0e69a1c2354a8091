import ConsentWire

/// Why a client call failed.
public struct ConsentClientError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    public enum Kind: Sendable, Equatable {
        /// Could not connect (no daemon, wrong path, permissions).
        case connect
        /// The connection broke or the daemon closed it.
        case disconnected
        /// No answer within the timeout.
        case timeout
        /// The daemon's bytes are not valid frames or responses.
        case protocolViolation
        /// The daemon answered with an error.
        case server(Consentd_V1_ErrorCode)
        /// The daemon answered with another method's response.
        case unexpectedResponse
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
