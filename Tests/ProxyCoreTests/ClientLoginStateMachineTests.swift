// Transcripts of a client logging in to the proxy (ClientLoginStateMachine), no sockets: startup packets,
// encryption refusal, cancel, and trust / md5 / SCRAM-SHA-256 against plain, md5 and SCRAM auth_file secrets.
import XCTest
import PGWire
import ProxyCore
import ProxyIO

final class ClientLoginStateMachineTests: XCTestCase {
    let crypto = OpenSSLCrypto()
    let user = "alice"
    let password = "s3cret pass"

    // MARK: Helpers

    private func machine(_ authType: AuthType, _ table: [String: Secret]) -> ClientLoginStateMachine {
        let crypto = self.crypto
        return ClientLoginStateMachine(authType: authType, crypto: crypto, secrets: { table[$0] },
                                       scramSecretFor: { _, p in
                                           SCRAM.makeSecret(password: p, salt: Array(repeating: 7, count: 16), iterations: 4096, crypto: crypto)
                                       }, mockNonce: [1, 2, 3])
    }

    private func startup(_ params: [(String, String)]) -> StartupPacket { .startup(parameters: params) }

    private func passwordFrame(_ payload: [UInt8]) -> Frame { Frame(type: UInt8(ascii: "p"), payload: payload) }

    /// Every backend message in `bytes`, decoded; fails the test on a partial or malformed frame.
    private func decode(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> [BackendMessage] {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        var out: [BackendMessage] = []
        while let frame = try decoder.next() { out.append(try BackendMessage(frame)) }
        XCTAssertEqual(decoder.bufferedCount, 0, "trailing partial frame", file: file, line: line)
        return out
    }

    private func sentBytes(_ action: ClientLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        guard case .send(let b) = action else {
            XCTFail("expected .send, got \(action)", file: file, line: line)
            throw CancellationError()
        }
        return b
    }

    /// The SQLSTATE of the single ErrorResponse in a `.fail` action.
    private func failCode(_ action: ClientLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard case .fail(let bytes, _) = action else {
            XCTFail("expected .fail, got \(action)", file: file, line: line)
            throw CancellationError()
        }
        let messages = try decode(bytes, file: file, line: line)
        guard messages.count == 1, case .error(let fields) = messages[0] else {
            XCTFail("expected one ErrorResponse, got \(messages)", file: file, line: line)
            throw CancellationError()
        }
        XCTAssertEqual(fields.severity, "FATAL", file: file, line: line)
        return fields.sqlState
    }

    private func authenticated(_ action: ClientLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> (ClientLogin, [UInt8]) {
        guard case .authenticated(let login, let send) = action else {
            XCTFail("expected .authenticated, got \(action)", file: file, line: line)
            throw CancellationError()
        }
        return (login, send)
    }

    private func md5Hex(_ bytes: [UInt8]) -> String { crypto.md5(bytes).map { String(format: "%02x", $0) }.joined() }

    /// The salt from an AuthenticationMD5Password action.
    private func md5Salt(_ action: ClientLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        let messages = try decode(try sentBytes(action, file: file, line: line), file: file, line: line)
        guard messages.count == 1, case .authentication(.md5Password(let salt)) = messages[0] else {
            XCTFail("expected AuthenticationMD5Password, got \(messages)", file: file, line: line)
            throw CancellationError()
        }
        XCTAssertEqual(salt.count, 4, file: file, line: line)
        return salt
    }

    private func assertSASLRequest(_ action: ClientLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws {
        let messages = try decode(try sentBytes(action, file: file, line: line), file: file, line: line)
        XCTAssertEqual(messages, [.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))], file: file, line: line)
    }

    /// The ClientKey a client with `password` proves for a secret with this salt and iteration count.
    private func clientKey(password: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        let salted = crypto.pbkdf2SHA256(password: Array(password.utf8), salt: salt, iterations: iterations)
        return crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8))
    }

    /// Runs a SCRAM exchange as a libpq client with `clientPassword`, up to and including the final message.
    /// Returns the last action and the client exchange (to check the server's signature).
    private func runSCRAM(_ m: inout ClientLoginStateMachine, clientPassword: String,
                          file: StaticString = #filePath, line: UInt = #line) throws -> (ClientLoginStateMachine.Action, SCRAMClientExchange, String) {
        var client = SCRAMClientExchange(user: user, credential: .password(clientPassword), crypto: crypto)
        let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())
        let cont = m.passwordReceived(passwordFrame(Array(initial.dropFirst(5))))
        let messages = try decode(try sentBytes(cont, file: file, line: line), file: file, line: line)
        guard messages.count == 1, case .authentication(.saslContinue(let serverFirst)) = messages[0] else {
            XCTFail("expected AuthenticationSASLContinue, got \(messages)", file: file, line: line)
            throw CancellationError()
        }
        let serverFirstText = String(decoding: serverFirst, as: UTF8.self)
        guard case .success(let clientFinal) = client.receiveServerFirst(serverFirst) else {
            XCTFail("client rejected server-first \(serverFirstText)", file: file, line: line)
            throw CancellationError()
        }
        return (m.passwordReceived(passwordFrame(clientFinal)), client, serverFirstText)
    }

    /// Checks a successful SCRAM login: SASLFinal carries a signature the client accepts, and the ClientKey is recovered.
    private func assertSCRAMSuccess(_ action: ClientLoginStateMachine.Action, client: SCRAMClientExchange, expectedClientKey: [UInt8],
                                    file: StaticString = #filePath, line: UInt = #line) throws -> ClientLogin {
        var client = client
        let (login, send) = try authenticated(action, file: file, line: line)
        let messages = try decode(send, file: file, line: line)
        guard messages.count == 1, case .authentication(.saslFinal(let serverFinal)) = messages[0] else {
            XCTFail("expected AuthenticationSASLFinal in send, got \(messages)", file: file, line: line)
            throw CancellationError()
        }
        guard case .success = client.receiveServerFinal(serverFinal) else {
            XCTFail("client rejected the server signature", file: file, line: line)
            throw CancellationError()
        }
        XCTAssertTrue(client.succeeded, file: file, line: line)
        XCTAssertEqual(login.scramClientKey, expectedClientKey, file: file, line: line)
        return login
    }

    // MARK: Startup phase

    func testTrustAuthenticatesImmediatelyWithUserDatabaseAndParameters() throws {
        var m = machine(.trust, [:])
        let action = m.startupReceived(startup([("user", "bob"), ("database", "shop"), ("application_name", "psql"),
                                                ("options", "-c search_path=x"), ("client_encoding", "UTF8")]))
        let (login, send) = try authenticated(action)
        XCTAssertEqual(login.user, "bob")
        XCTAssertEqual(login.database, "shop")
        XCTAssertEqual(login.parameters.map { $0.0 }, ["application_name", "options", "client_encoding"])
        XCTAssertEqual(login.parameters.map { $0.1 }, ["psql", "-c search_path=x", "UTF8"])
        XCTAssertNil(login.scramClientKey)
        XCTAssertEqual(send, [])
        guard case .authenticated = m.state else { return XCTFail("state \(m.state)") }
    }

    func testDatabaseDefaultsToUserName() throws {
        var m = machine(.trust, [:])
        let (login, _) = try authenticated(m.startupReceived(startup([("user", "carol")])))
        XCTAssertEqual(login.database, "carol")
        XCTAssertEqual(login.parameters.count, 0)
    }

    func testSSLRequestIsRefusedAndStartupStillAccepted() throws {
        var m = machine(.trust, [:])
        XCTAssertEqual(m.startupReceived(.sslRequest), .refuseEncryption(UInt8(ascii: "N")))
        guard case .awaitingStartup = m.state else { return XCTFail("state \(m.state)") }
        let (login, _) = try authenticated(m.startupReceived(startup([("user", "bob")])))
        XCTAssertEqual(login.user, "bob")
    }

    func testGSSENCRequestThenSSLRequestAreRefusedAndStartupStillAccepted() throws {
        var m = machine(.md5, [user: .plain(password)])
        XCTAssertEqual(m.startupReceived(.gssEncRequest), .refuseEncryption(UInt8(ascii: "N")))
        XCTAssertEqual(m.startupReceived(.sslRequest), .refuseEncryption(UInt8(ascii: "N")))
        _ = try md5Salt(m.startupReceived(startup([("user", user)])))
    }

    // MARK: TLS negotiation

    private func tlsMachine(_ mode: ClientTLSMode, _ authType: AuthType = .trust, _ table: [String: Secret] = [:]) -> ClientLoginStateMachine {
        var m = machine(authType, table)
        m.tlsMode = mode
        return m
    }

    private let withCertificate = TLSPeer(hasCertificate: true, commonName: "alice")
    private let withoutCertificate = TLSPeer(hasCertificate: false, commonName: nil)

    func testSSLRequestIsAcceptedWhenTLSIsConfigured() throws {
        for mode in [ClientTLSMode.allow, .prefer, .require, .verifyCA, .verifyFull] {
            var m = tlsMachine(mode)
            XCTAssertEqual(m.startupReceived(.sslRequest), .acceptEncryption, "\(mode)")
            guard case .awaitingTLSHandshake = m.state else { return XCTFail("state \(m.state)") }
        }
    }

    func testSSLRequestIsRefusedWhenTLSIsDisabled() {
        var m = tlsMachine(.disable)
        XCTAssertEqual(m.startupReceived(.sslRequest), .refuseEncryption(UInt8(ascii: "N")))
        XCTAssertNil(m.tls)
    }

    func testLoginOverTLSAfterTheHandshake() throws {
        var m = tlsMachine(.require)
        XCTAssertEqual(m.startupReceived(.sslRequest), .acceptEncryption)
        XCTAssertEqual(m.tlsEstablished(withoutCertificate), ClientLoginStateMachine.Action.none)
        guard case .awaitingStartup = m.state else { return XCTFail("state \(m.state)") }
        XCTAssertEqual(m.tls, withoutCertificate)
        let (login, _) = try authenticated(m.startupReceived(startup([("user", "bob")])))
        XCTAssertEqual(login.user, "bob")
    }

    func testPlaintextLoginIsRefusedWith28000UnderRequire() throws {
        for mode in [ClientTLSMode.require, .verifyCA, .verifyFull] {
            var m = tlsMachine(mode)
            XCTAssertEqual(try failCode(m.startupReceived(startup([("user", "bob")]))), "28000", "\(mode)")
            guard case .failed = m.state else { return XCTFail("state \(m.state)") }
        }
        // After a refused SSLRequest ('N' from a GSSENCRequest does not count as TLS either).
        var m = tlsMachine(.require)
        XCTAssertEqual(m.startupReceived(.gssEncRequest), .refuseEncryption(UInt8(ascii: "N")))
        XCTAssertEqual(try failCode(m.startupReceived(startup([("user", "bob")]))), "28000")
    }

    func testPlaintextLoginIsAllowedUnderAllowAndPrefer() throws {
        for mode in [ClientTLSMode.allow, .prefer, .disable] {
            var m = tlsMachine(mode)
            _ = try authenticated(m.startupReceived(startup([("user", "bob")])))
        }
    }

    func testVerifyCARequiresAClientCertificate() throws {
        var m = tlsMachine(.verifyCA)
        _ = m.startupReceived(.sslRequest)
        _ = m.tlsEstablished(withoutCertificate)
        guard case .fail(let bytes, let reason) = m.startupReceived(startup([("user", "bob")])) else { return XCTFail() }
        XCTAssertEqual(reason, "no client certificate")
        XCTAssertEqual(try failCode(.fail(bytes, reason: reason)), "28000")

        var ok = tlsMachine(.verifyFull)
        _ = ok.startupReceived(.sslRequest)
        _ = ok.tlsEstablished(withCertificate)
        _ = try authenticated(ok.startupReceived(startup([("user", "bob")])))
    }

    func testUnencryptedBytesAfterSSLRequestAreAProtocolViolation() throws {
        var m = tlsMachine(.require)
        XCTAssertEqual(try failCode(m.startupReceived(.sslRequest, trailingBytes: 8)), "08P01")
        // Refusing TLS leaves pipelined bytes alone: they are the plaintext startup packet.
        var n = tlsMachine(.disable)
        XCTAssertEqual(n.startupReceived(.sslRequest, trailingBytes: 40), .refuseEncryption(UInt8(ascii: "N")))
    }

    func testSecondSSLRequestOverTLSIsAProtocolViolation() throws {
        var m = tlsMachine(.prefer)
        _ = m.startupReceived(.sslRequest)
        _ = m.tlsEstablished(withoutCertificate)
        XCTAssertEqual(try failCode(m.startupReceived(.sslRequest)), "08P01")
        var g = tlsMachine(.prefer)
        _ = g.startupReceived(.sslRequest)
        _ = g.tlsEstablished(withoutCertificate)
        XCTAssertEqual(try failCode(g.startupReceived(.gssEncRequest)), "08P01")
    }

    func testFailedHandshakeClosesWithoutReply() {
        var m = tlsMachine(.require)
        _ = m.startupReceived(.sslRequest)
        XCTAssertEqual(m.tlsFailed("wrong version number"), .close(reason: "TLS handshake failed: wrong version number"))
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testHandshakeWithoutSSLRequestIsAProtocolViolation() throws {
        var m = tlsMachine(.require)
        XCTAssertEqual(try failCode(m.tlsEstablished(withoutCertificate)), "08P01")
    }

    func testCancelRequestIsAcceptedWithoutTLSUnderRequire() {
        var m = tlsMachine(.require)
        XCTAssertEqual(m.startupReceived(.cancel(processID: 1, secretKey: 2)), .cancel(processID: 1, secretKey: 2))
        var t = tlsMachine(.require)
        _ = t.startupReceived(.sslRequest)
        _ = t.tlsEstablished(withoutCertificate)
        XCTAssertEqual(t.startupReceived(.cancel(processID: 1, secretKey: 2)), .cancel(processID: 1, secretKey: 2))
    }

    // MARK: Certificate authentication

    func testCertAuthLogsInTheUserNamedByTheCertificate() throws {
        var m = tlsMachine(.require, .cert)
        _ = m.startupReceived(.sslRequest)
        _ = m.tlsEstablished(withCertificate)
        let (login, send) = try authenticated(m.startupReceived(startup([("user", "alice"), ("database", "db")])))
        XCTAssertEqual(login.user, "alice")
        XCTAssertEqual(send, [])
    }

    func testCertAuthRefusesAnotherUser() throws {
        var m = tlsMachine(.require, .cert)
        _ = m.startupReceived(.sslRequest)
        _ = m.tlsEstablished(withCertificate)
        let action = m.startupReceived(startup([("user", "mallory")]))
        XCTAssertEqual(try failCode(action), "28000")
        guard case .fail(_, let reason) = action else { return XCTFail() }
        XCTAssertEqual(reason, "certificate CommonName \"alice\" is not the user name")
    }

    func testCertAuthWithoutCertificateIs28000() throws {
        var m = tlsMachine(.require, .cert)
        _ = m.startupReceived(.sslRequest)
        _ = m.tlsEstablished(withoutCertificate)
        XCTAssertEqual(try failCode(m.startupReceived(startup([("user", "alice")]))), "28000")
        // A certificate without a usable CommonName is no better.
        var n = tlsMachine(.require, .cert)
        _ = n.startupReceived(.sslRequest)
        _ = n.tlsEstablished(TLSPeer(hasCertificate: true, commonName: nil))
        XCTAssertEqual(try failCode(n.startupReceived(startup([("user", "alice")]))), "28000")
        // Nor is plaintext when the mode would allow it.
        var p = tlsMachine(.allow, .cert)
        XCTAssertEqual(try failCode(p.startupReceived(startup([("user", "alice")]))), "28000")
    }

    func testCancelRequestIsForwardedAndEndsTheLogin() throws {
        var m = machine(.trust, [:])
        XCTAssertEqual(m.startupReceived(.cancel(processID: 4242, secretKey: -7)), .cancel(processID: 4242, secretKey: -7))
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testReplicationParameterIsRefusedWithFeatureNotSupported() throws {
        var m = machine(.trust, [:])
        let action = m.startupReceived(startup([("user", "bob"), ("replication", "database")]))
        XCTAssertEqual(try failCode(action), "0A000")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testSecondStartupPacketIsAProtocolViolation() throws {
        var m = machine(.md5, [user: .plain(password)])
        _ = try md5Salt(m.startupReceived(startup([("user", user)])))
        XCTAssertEqual(try failCode(m.startupReceived(startup([("user", user)]))), "08P01")
    }

    func testPasswordBeforeStartupIsAProtocolViolation() throws {
        var m = machine(.md5, [user: .plain(password)])
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array("x\0".utf8)))), "08P01")
    }

    // MARK: md5

    func testMD5WithPlainSecret() throws {
        var m = machine(.md5, [user: .plain(password)])
        let salt = try md5Salt(m.startupReceived(startup([("user", user), ("database", "db1")])))
        let response = try XCTUnwrap(MD5Password.response(user: user, secret: .plain(password), salt: salt, crypto: crypto))
        // Independent check of the response format: "md5" + hex(md5(hex(md5(password + user)) + salt)).
        XCTAssertEqual(response, "md5" + md5Hex(Array(md5Hex(Array((password + user).utf8)).utf8) + salt))
        let (login, send) = try authenticated(m.passwordReceived(passwordFrame(Array((response + "\0").utf8))))
        XCTAssertEqual(login.user, user)
        XCTAssertEqual(login.database, "db1")
        XCTAssertNil(login.scramClientKey)
        XCTAssertEqual(send, [])
    }

    func testMD5WithMD5Secret() throws {
        let stored = "md5" + md5Hex(Array((password + user).utf8))
        var m = machine(.md5, [user: .md5(stored)])
        let salt = try md5Salt(m.startupReceived(startup([("user", user)])))
        let response = try XCTUnwrap(MD5Password.response(user: user, secret: .plain(password), salt: salt, crypto: crypto))
        let (login, _) = try authenticated(m.passwordReceived(passwordFrame(Array((response + "\0").utf8))))
        XCTAssertEqual(login.user, user)
    }

    func testMD5SaltIsFreshPerLogin() throws {
        var a = machine(.md5, [user: .plain(password)])
        var b = machine(.md5, [user: .plain(password)])
        let s1 = try md5Salt(a.startupReceived(startup([("user", user)])))
        let s2 = try md5Salt(b.startupReceived(startup([("user", user)])))
        XCTAssertNotEqual(s1, s2)
    }

    func testMD5WrongPasswordFailsWith28P01() throws {
        var m = machine(.md5, [user: .plain(password)])
        let salt = try md5Salt(m.startupReceived(startup([("user", user)])))
        let response = try XCTUnwrap(MD5Password.response(user: user, secret: .plain("wrong"), salt: salt, crypto: crypto))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array((response + "\0").utf8)))), "28P01")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testMD5UnknownUserIsAskedForAPasswordThenFailsWith28P01() throws {
        var m = machine(.md5, [:])
        let salt = try md5Salt(m.startupReceived(startup([("user", "nobody")])))
        let response = try XCTUnwrap(MD5Password.response(user: "nobody", secret: .plain("x"), salt: salt, crypto: crypto))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array((response + "\0").utf8)))), "28P01")
    }

    func testMD5ResponseWithoutTerminatorIsMalformed() throws {
        var m = machine(.md5, [user: .plain(password)])
        _ = try md5Salt(m.startupReceived(startup([("user", user)])))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array("md5abc".utf8)))), "08P01")
    }

    func testNonPasswordFrameDuringAuthIsAProtocolViolation() throws {
        var m = machine(.md5, [user: .plain(password)])
        _ = try md5Salt(m.startupReceived(startup([("user", user)])))
        XCTAssertEqual(try failCode(m.passwordReceived(Frame(type: UInt8(ascii: "Q"), payload: Array("select 1\0".utf8)))), "08P01")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testPasswordAfterFailureIsAProtocolViolation() throws {
        var m = machine(.md5, [user: .plain(password)])
        _ = try md5Salt(m.startupReceived(startup([("user", user)])))
        _ = m.passwordReceived(passwordFrame(Array("md5nope\0".utf8)))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array("md5nope\0".utf8)))), "08P01")
    }

    // MARK: SCRAM-SHA-256

    func testSCRAMWithSCRAMSecret() throws {
        let salt = Array(0..<16).map { UInt8($0) }
        let secret = SCRAM.makeSecret(password: password, salt: salt, iterations: 4096, crypto: crypto)
        var m = machine(.scramSHA256, [user: .scram(secret)])
        try assertSASLRequest(m.startupReceived(startup([("user", user), ("database", "db2"), ("application_name", "app")])))
        let (action, client, serverFirst) = try runSCRAM(&m, clientPassword: password)
        XCTAssertTrue(serverFirst.hasSuffix(",s=" + AuthBase64.encodeString(salt) + ",i=4096"), serverFirst)
        let login = try assertSCRAMSuccess(action, client: client,
                                           expectedClientKey: clientKey(password: password, salt: salt, iterations: 4096))
        XCTAssertEqual(login.user, user)
        XCTAssertEqual(login.database, "db2")
        XCTAssertEqual(login.parameters.map { $0.0 + "=" + $0.1 }, ["application_name=app"])
        XCTAssertEqual(login.scramClientKey?.count, 32)
        // The recovered ClientKey hashes to the stored key: it can drive a server login.
        XCTAssertEqual(crypto.sha256(try XCTUnwrap(login.scramClientKey)), secret.storedKey)
    }

    func testSCRAMWithPlainSecretUsesScramSecretFor() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        let (action, client, serverFirst) = try runSCRAM(&m, clientPassword: password)
        // machine(_:_:) derives plain secrets with sixteen 7s as salt.
        XCTAssertTrue(serverFirst.hasSuffix(",s=" + AuthBase64.encodeString(Array(repeating: 7, count: 16)) + ",i=4096"), serverFirst)
        _ = try assertSCRAMSuccess(action, client: client,
                                   expectedClientKey: clientKey(password: password, salt: Array(repeating: 7, count: 16), iterations: 4096))
    }

    func testSCRAMWrongPasswordFailsWith28P01() throws {
        var m = machine(.scramSHA256, [user: .scram(SCRAM.makeSecret(password: password, crypto: crypto))])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        let (action, _, _) = try runSCRAM(&m, clientPassword: "not it")
        XCTAssertEqual(try failCode(action), "28P01")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testSCRAMUnknownUserFailsOnlyAfterTheFinalMessage() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        // No early leak: the unknown user gets the same SASL request and a well-formed server-first.
        try assertSASLRequest(m.startupReceived(startup([("user", "mallory")])))
        var client = SCRAMClientExchange(user: "mallory", credential: .password("guess"), crypto: crypto)
        let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())
        let cont = m.passwordReceived(passwordFrame(Array(initial.dropFirst(5))))
        let messages = try decode(try sentBytes(cont))
        guard messages.count == 1, case .authentication(.saslContinue(let serverFirst)) = messages[0] else {
            return XCTFail("expected AuthenticationSASLContinue, got \(messages)")
        }
        XCTAssertTrue(String(decoding: serverFirst, as: UTF8.self).hasSuffix(",i=4096"))
        guard case .success(let clientFinal) = client.receiveServerFirst(serverFirst) else { return XCTFail("bad server-first") }
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(clientFinal))), "28P01")
    }

    func testSCRAMUnknownUserGetsTheSameSaltEveryTime() throws {
        // A salt that changed per attempt would tell an attacker the user does not exist.
        func serverFirst(_ who: String) throws -> String {
            var m = machine(.scramSHA256, [user: .plain(password)])
            try assertSASLRequest(m.startupReceived(startup([("user", who)])))
            var client = SCRAMClientExchange(user: who, credential: .password("guess"), crypto: crypto)
            let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())
            let messages = try decode(try sentBytes(m.passwordReceived(passwordFrame(Array(initial.dropFirst(5))))))
            guard case .authentication(.saslContinue(let first)) = messages[0] else { throw XCTSkip("no server-first") }
            let text = String(decoding: first, as: UTF8.self)
            return String(text[text.range(of: ",s=")!.lowerBound...])
        }
        XCTAssertEqual(try serverFirst("mallory"), try serverFirst("mallory"))
        XCTAssertNotEqual(try serverFirst("mallory"), try serverFirst("eve"))
    }

    func testSCRAMUnknownUserIsOfferedSCRAM() throws {
        // An unknown user (nil secret) under scram-sha-256 runs the mock exchange, not md5.
        var m = machine(.scramSHA256, [:])
        try assertSASLRequest(m.startupReceived(startup([("user", "ghost")])))
    }

    func testSCRAMWrongMechanismIsAProtocolViolation() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256-PLUS", data: Array("p=tls-server-end-point,,n=,r=abc".utf8))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array(initial.dropFirst(5))))), "08P01")
    }

    func testSCRAMMalformedInitialResponseIsAProtocolViolation() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        // Mechanism without the length field.
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array("SCRAM-SHA-256\0".utf8)))), "08P01")
    }

    func testSCRAMGarbageClientFirstIsAProtocolViolation() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("hello".utf8))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array(initial.dropFirst(5))))), "08P01")
    }

    func testNonPasswordFrameDuringSCRAMIsAProtocolViolation() throws {
        var m = machine(.scramSHA256, [user: .plain(password)])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        XCTAssertEqual(try failCode(m.passwordReceived(Frame(type: UInt8(ascii: "X"), payload: []))), "08P01")
    }

    // MARK: auth_type / secret mismatches

    func testMD5AuthTypeWithSCRAMSecretUsesSCRAM() throws {
        let salt = Array(repeating: UInt8(3), count: 16)
        var m = machine(.md5, [user: .scram(SCRAM.makeSecret(password: password, salt: salt, iterations: 4096, crypto: crypto))])
        try assertSASLRequest(m.startupReceived(startup([("user", user)])))
        let (action, client, _) = try runSCRAM(&m, clientPassword: password)
        _ = try assertSCRAMSuccess(action, client: client, expectedClientKey: clientKey(password: password, salt: salt, iterations: 4096))
    }

    func testSCRAMAuthTypeWithMD5SecretFallsBackToMD5() throws {
        let stored = "md5" + md5Hex(Array((password + user).utf8))
        var m = machine(.scramSHA256, [user: .md5(stored)])
        let salt = try md5Salt(m.startupReceived(startup([("user", user)])))
        let response = try XCTUnwrap(MD5Password.response(user: user, secret: .plain(password), salt: salt, crypto: crypto))
        let (login, _) = try authenticated(m.passwordReceived(passwordFrame(Array((response + "\0").utf8))))
        XCTAssertEqual(login.user, user)
        XCTAssertNil(login.scramClientKey)
    }

    func testSCRAMAuthTypeWithMD5SecretRejectsWrongPassword() throws {
        let stored = "md5" + md5Hex(Array((password + user).utf8))
        var m = machine(.scramSHA256, [user: .md5(stored)])
        let salt = try md5Salt(m.startupReceived(startup([("user", user)])))
        let response = try XCTUnwrap(MD5Password.response(user: user, secret: .plain("nope"), salt: salt, crypto: crypto))
        XCTAssertEqual(try failCode(m.passwordReceived(passwordFrame(Array((response + "\0").utf8)))), "28P01")
    }
}
