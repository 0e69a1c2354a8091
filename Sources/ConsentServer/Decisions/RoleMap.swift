/// Who may do what, from the peer's SO_PEERCRED credentials: the configured role map and the
/// daemon's own uid, and nothing else (a value; tested without a daemon).
package struct RoleMap: Sendable, Equatable {
    package var adminUIDs: [UInt32] = []
    package var adminGIDs: [UInt32] = []
    package var checkUIDs: [UInt32] = []
    package var checkGIDs: [UInt32] = []
    package var allowAnyAdmin = false
    /// The daemon's own user id (may always administer, as root may).
    package var ownUID: UInt32

    package init(configuration c: ServerConfiguration, ownUID: UInt32) {
        adminUIDs = c.adminUIDs
        adminGIDs = c.adminGIDs
        checkUIDs = c.checkUIDs
        checkGIDs = c.checkGIDs
        allowAnyAdmin = c.allowAnyAdmin
        self.ownUID = ownUID
    }

    /// What `peer` may do (nil: unknown credentials, which may check only when every peer may).
    package func roles(of peer: PeerCredentials?) -> PeerRoles {
        let admin: Bool
        if allowAnyAdmin {
            admin = true
        } else if let peer {
            admin = peer.uid == ownUID || peer.uid == 0 || adminUIDs.contains(peer.uid) || adminGIDs.contains(peer.gid)
        } else {
            admin = false
        }
        let everyoneChecks = checkUIDs.isEmpty && checkGIDs.isEmpty
        let check = admin || everyoneChecks || peer.map { checkUIDs.contains($0.uid) || checkGIDs.contains($0.gid) } ?? false
        return PeerRoles(check: check, admin: admin)
    }
}

/// The roles of one peer.
public struct PeerRoles: Sendable, Equatable {
    /// Check, CheckBatch, ListUses, Status.
    public var check: Bool
    /// RecordConsent, History, EraseSubject (and everything `check` allows).
    public var admin: Bool

    /// Role names, for Status.
    public var names: [String] { (check ? ["check"] : []) + (admin ? ["admin"] : []) }
}
