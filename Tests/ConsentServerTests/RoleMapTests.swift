import ConsentClient
import ConsentModel
@testable import ConsentReceipts
@testable import ConsentServer
import ConsentStore
import ConsentTesting
import ConsentWire
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct RoleMapTests {
    /// The role map of a configuration, as a daemon running as `own` builds it.
    func roleMap(own: UInt32, _ configure: (inout ServerConfiguration) -> Void) -> RoleMap {
        var configuration = ServerConfiguration()
        configure(&configuration)
        return RoleMap(configuration: configuration, ownUID: own)
    }

    @Test func theRoleMapDecidesWhoMayDoWhat() {
        let own = UInt32(getuid()) == 0 ? 1000 : UInt32(getuid())
        typealias Case = (String, (inout ServerConfiguration) -> Void, PeerCredentials?, PeerRoles)
        let cases: [Case] = [
            ("own uid: everything", { _ in }, PeerCredentials(pid: 1, uid: own, gid: 5), PeerRoles(check: true, admin: true)),
            ("root: everything", { _ in }, PeerCredentials(pid: 1, uid: 0, gid: 0), PeerRoles(check: true, admin: true)),
            ("others check by default", { _ in }, PeerCredentials(pid: 1, uid: 4242, gid: 4242), PeerRoles(check: true, admin: false)),
            ("unknown peer checks by default", { _ in }, nil, PeerRoles(check: true, admin: false)),
            ("admin uid", { $0.adminUIDs = [4242] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: true, admin: true)),
            ("admin gid", { $0.adminGIDs = [77] }, PeerCredentials(pid: 1, uid: 4242, gid: 77), PeerRoles(check: true, admin: true)),
            ("check list excludes others", { $0.checkUIDs = [5000] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: false, admin: false)),
            ("check list admits its uid", { $0.checkUIDs = [4242] }, PeerCredentials(pid: 1, uid: 4242, gid: 1), PeerRoles(check: true, admin: false)),
            ("check gid admits members", { $0.checkGIDs = [88] }, PeerCredentials(pid: 1, uid: 4242, gid: 88), PeerRoles(check: true, admin: false)),
            ("check list: unknown peer refused", { $0.checkGIDs = [88] }, nil, PeerRoles(check: false, admin: false)),
            ("admins check even when listed checkers exist", { $0.checkUIDs = [5000] }, PeerCredentials(pid: 1, uid: own, gid: 1), PeerRoles(check: true, admin: true)),
            ("allow-any-admin", { $0.allowAnyAdmin = true; $0.checkUIDs = [5000] }, nil, PeerRoles(check: true, admin: true)),
        ]
        for (name, configure, peer, expected) in cases {
            #expect(roleMap(own: own, configure).roles(of: peer) == expected, "\(name)")
        }
    }

    /// The running daemon builds its role map from its configuration and its own uid.
    @Test func theDaemonsProcessorsUseItsRoleMap() async throws {
        let harness = try await DaemonHarness {
            $0.allowAnyAdmin = false
            $0.checkUIDs = [5000]
        }
        var processor = harness.daemon.state.makeProcessor()
        processor.peer = PeerCredentials(pid: 1, uid: 4242, gid: 1)
        #expect(processor.roles == PeerRoles(check: false, admin: false))
        processor.peer = PeerCredentials(pid: 1, uid: 5000, gid: 1)
        #expect(processor.roles == PeerRoles(check: true, admin: false))
        processor.peer = PeerCredentials(pid: 1, uid: UInt32(getuid()), gid: 1)
        #expect(processor.roles == PeerRoles(check: true, admin: true))
        try await harness.stop()
    }
}
