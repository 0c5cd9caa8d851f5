// Transcripts of the proxy logging in to a Postgres server (ServerLoginStateMachine), no sockets:
// trust, cleartext, md5, SCRAM (password and pass-through keys, against SCRAMServerExchange playing Postgres), and failures.
import XCTest
import PGWire
import ProxyCore
import ProxyIO

final class ServerLoginStateMachineTests: XCTestCase {
    let crypto = OpenSSLCrypto()
    let user = "app"
    let password = "hunter2"

    // MARK: Helpers

    /// Decodes bytes the proxy wrote (ProxyMessages) into one backend message, as a server's reply arrives.
    private func backend(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> BackendMessage {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        let frame = try XCTUnwrap(try decoder.next(), file: file, line: line)
        XCTAssertEqual(decoder.bufferedCount, 0, file: file, line: line)
        return try BackendMessage(frame)
    }

    /// The single 'p' frame in a `.send` action.
    private func sentPassword(_ action: ServerLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> Frame {
        guard case .send(let bytes) = action else {
            XCTFail("expected .send, got \(action)", file: file, line: line)
            throw CancellationError()
        }
        var decoder = FrameDecoder()
        decoder.append(bytes)
        let frame = try XCTUnwrap(try decoder.next(), file: file, line: line)
        XCTAssertEqual(decoder.bufferedCount, 0, file: file, line: line)
        XCTAssertEqual(frame.type, UInt8(ascii: "p"), file: file, line: line)
        return frame
    }

    private func failFields(_ action: ServerLoginStateMachine.Action, file: StaticString = #filePath, line: UInt = #line) throws -> ErrorFields {
        guard case .fail(let fields, _) = action else {
            XCTFail("expected .fail, got \(action)", file: file, line: line)
            throw CancellationError()
        }
        return fields
    }

    /// The tail every successful login ends with; asserts the `.ready` action.
    private func finishLogin(_ m: inout ServerLoginStateMachine, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(m.received(try backend(ProxyMessages.authenticationOk())), ServerLoginStateMachine.Action.none, file: file, line: line)
        XCTAssertEqual(m.received(try backend(ProxyMessages.parameterStatus("server_version", "16.2"))), .none, file: file, line: line)
        XCTAssertEqual(m.received(try backend(ProxyMessages.backendKeyData(processID: 77, secretKey: 99))), .none, file: file, line: line)
        XCTAssertEqual(m.received(try backend(ProxyMessages.readyForQuery(.idle))),
                       .ready(parameters: ["server_version": "16.2"], processID: 77, secretKey: 99), file: file, line: line)
        guard case .ready = m.state else { return XCTFail("state \(m.state)", file: file, line: line) }
    }

    /// Plays Postgres's side of SCRAM with `secret` against the machine. Returns the server exchange when done.
    private func runSCRAM(_ m: inout ServerLoginStateMachine, secret: SCRAMSecret,
                          file: StaticString = #filePath, line: UInt = #line) throws -> SCRAMServerExchange {
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        let initial = try sentPassword(m.received(try backend(ProxyMessages.authenticationSASL(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))),
                                       file: file, line: line)
        let (mechanism, clientFirst) = try XCTUnwrap(SASLInitialResponse.parse(initial.payload), file: file, line: line)
        XCTAssertEqual(mechanism, "SCRAM-SHA-256", file: file, line: line)
        XCTAssertTrue(String(decoding: clientFirst, as: UTF8.self).hasPrefix("n,,n=,r="), file: file, line: line)
        guard case .success(let serverFirst) = server.receiveClientFirst(clientFirst) else {
            XCTFail("server rejected client-first", file: file, line: line)
            throw CancellationError()
        }
        let response = try sentPassword(m.received(try backend(ProxyMessages.authenticationSASLContinue(serverFirst))), file: file, line: line)
        guard case .success(let serverFinal) = server.receiveClientFinal(response.payload) else {
            XCTFail("server rejected the client proof", file: file, line: line)
            throw CancellationError()
        }
        XCTAssertEqual(m.received(try backend(ProxyMessages.authenticationSASLFinal(serverFinal))), .none, file: file, line: line)
        return server
    }

    private func md5Hex(_ bytes: [UInt8]) -> String { crypto.md5(bytes).map { String(format: "%02x", $0) }.joined() }

    // MARK: Trust

    func testTrustLoginCollectsParametersAndKey() throws {
        var m = ServerLoginStateMachine(user: user, credential: .none, crypto: crypto)
        XCTAssertEqual(m.received(try backend(ProxyMessages.authenticationOk())), .none)
        XCTAssertEqual(m.received(.parameterStatus(name: "client_encoding", value: "UTF8")), .none)
        XCTAssertEqual(m.received(.parameterStatus(name: "TimeZone", value: "UTC")), .none)
        XCTAssertEqual(m.received(.parameterStatus(name: "client_encoding", value: "SQL_ASCII")), .none)
        XCTAssertEqual(m.received(.notice(ErrorFields(fields: [UInt8(ascii: "M"): "hi"]))), .none)
        XCTAssertEqual(m.received(.backendKeyData(processID: 1234, secretKey: -5678)), .none)
        XCTAssertEqual(m.parameters, ["client_encoding": "SQL_ASCII", "TimeZone": "UTC"])
        XCTAssertEqual(m.received(.readyForQuery(.idle)),
                       .ready(parameters: ["client_encoding": "SQL_ASCII", "TimeZone": "UTC"], processID: 1234, secretKey: -5678))
        guard case .ready = m.state else { return XCTFail("state \(m.state)") }
    }

    func testReadyForQueryBeforeAuthenticationFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        let fields = try failFields(m.received(.readyForQuery(.idle)))
        XCTAssertEqual(fields.sqlState, "08006")
        XCTAssertEqual(fields.severity, "FATAL")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testReadyForQueryDuringSCRAMFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        _ = try sentPassword(m.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))))
        XCTAssertEqual(try failFields(m.received(.readyForQuery(.idle))).sqlState, "08006")
    }

    func testUnexpectedMessageDuringLoginFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .none, crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.other(type: UInt8(ascii: "D")))).sqlState, "08006")
    }

    // MARK: Cleartext and md5

    func testCleartextRequestSendsPlainPassword() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        let action = m.received(try backend(ProxyMessages.authenticationCleartext()))
        XCTAssertEqual(action, .send(ProxyMessages.password(password)))
        XCTAssertEqual(try sentPassword(action).payload, Array((password + "\0").utf8))
        try finishLogin(&m)
    }

    func testCleartextRequestWithMD5SecretFailsWith28P01() throws {
        let stored = "md5" + md5Hex(Array((password + user).utf8))
        var m = ServerLoginStateMachine(user: user, credential: .secret(.md5(stored)), crypto: crypto)
        let fields = try failFields(m.received(.authentication(.cleartextPassword)))
        XCTAssertEqual(fields.sqlState, "28P01")
        XCTAssertEqual(fields.severity, "FATAL")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testMD5RequestWithPlainSecret() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        let salt: [UInt8] = [0x01, 0xFF, 0x20, 0x7F]
        let frame = try sentPassword(m.received(try backend(ProxyMessages.authenticationMD5(salt: salt))))
        let expected = "md5" + md5Hex(Array(md5Hex(Array((password + user).utf8)).utf8) + salt)
        XCTAssertEqual(frame.payload, Array((expected + "\0").utf8))
        try finishLogin(&m)
    }

    func testMD5RequestWithMD5Secret() throws {
        let stored = "md5" + md5Hex(Array((password + user).utf8))
        var m = ServerLoginStateMachine(user: user, credential: .secret(.md5(stored)), crypto: crypto)
        let salt: [UInt8] = [9, 8, 7, 6]
        let frame = try sentPassword(m.received(.authentication(.md5Password(salt: salt))))
        let expected = "md5" + md5Hex(Array(md5Hex(Array((password + user).utf8)).utf8) + salt)
        XCTAssertEqual(frame.payload, Array((expected + "\0").utf8))
        try finishLogin(&m)
    }

    func testMD5RequestWithSCRAMSecretFailsWith28P01() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.scram(SCRAM.makeSecret(password: password, crypto: crypto))), crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.authentication(.md5Password(salt: [1, 2, 3, 4])))).sqlState, "28P01")
    }

    func testMD5RequestWithNoCredentialFailsWith28P01() throws {
        var m = ServerLoginStateMachine(user: user, credential: .none, crypto: crypto)
        let fields = try failFields(m.received(.authentication(.md5Password(salt: [1, 2, 3, 4]))))
        XCTAssertEqual(fields.sqlState, "28P01")
        XCTAssertTrue(fields.message.contains("\"app\""), fields.message)
    }

    // MARK: SCRAM-SHA-256

    func testSCRAMWithPlainPassword() throws {
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        let server = try runSCRAM(&m, secret: secret)
        XCTAssertEqual(server.clientKey.map(crypto.sha256), secret.storedKey)
        try finishLogin(&m)
    }

    func testSCRAMKeysLearnedAtOneLoginSkipPBKDF2AtTheNext() throws {
        let counting = CountingCrypto(OpenSSLCrypto())
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        var first = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: counting)
        _ = try runSCRAM(&first, secret: secret)
        try finishLogin(&first)
        XCTAssertEqual(counting.pbkdf2Calls, 1)
        let learned = try XCTUnwrap(first.learnedKeys)
        XCTAssertEqual(learned.salt, secret.salt)
        XCTAssertEqual(crypto.sha256(learned.clientKey), secret.storedKey)

        // Filled after the machine was made, as the proxy does for logins that started together.
        var second = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: counting)
        second.knownKeys = learned
        _ = try runSCRAM(&second, secret: secret)
        try finishLogin(&second)
        XCTAssertEqual(counting.pbkdf2Calls, 1, "the known keys answered the same salt")

        // The role's password was set again: a new salt, so the known keys are not used and the login still works.
        let changed = SCRAM.makeSecret(password: password, crypto: crypto)
        var third = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: counting, knownKeys: learned)
        _ = try runSCRAM(&third, secret: changed)
        try finishLogin(&third)
        XCTAssertEqual(counting.pbkdf2Calls, 2)
        XCTAssertEqual(third.learnedKeys?.salt, changed.salt)
    }

    func testSCRAMWithPassThroughKeysLearnsNothing() throws {
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        let salted = crypto.pbkdf2SHA256(password: Array(password.utf8), salt: secret.salt, iterations: secret.iterations)
        let clientKey = crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8))
        var m = ServerLoginStateMachine(user: user, credential: .scramKeys(clientKey: clientKey, serverKey: secret.serverKey), crypto: crypto)
        _ = try runSCRAM(&m, secret: secret)
        XCTAssertNil(m.learnedKeys)
    }

    func testSCRAMWithPassThroughKeys() throws {
        let secret = SCRAM.makeSecret(password: password, salt: Array(repeating: 1, count: 16), iterations: 4096, crypto: crypto)
        let salted = crypto.pbkdf2SHA256(password: Array(password.utf8), salt: secret.salt, iterations: secret.iterations)
        let clientKey = crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8))
        var m = ServerLoginStateMachine(user: user, credential: .scramKeys(clientKey: clientKey, serverKey: secret.serverKey), crypto: crypto)
        let server = try runSCRAM(&m, secret: secret)
        XCTAssertEqual(server.clientKey, clientKey)
        try finishLogin(&m)
    }

    func testSCRAMPassThroughFromAClientLogin() throws {
        // A client logs in to the proxy against a SCRAM-only auth_file entry; the recovered ClientKey then logs in to the server.
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        let crypto = self.crypto
        var front = ClientLoginStateMachine(authType: .scramSHA256, crypto: crypto, secrets: { [user] in $0 == user ? .scram(secret) : nil },
                                            scramSecretFor: { _, p in SCRAM.makeSecret(password: p, crypto: crypto) })
        _ = front.startupReceived(.startup(parameters: [("user", user)]))
        var client = SCRAMClientExchange(user: user, credential: .password(password), crypto: crypto)
        let initial = ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: client.clientFirstMessage())
        guard case .send(let cont) = front.passwordReceived(Frame(type: UInt8(ascii: "p"), payload: Array(initial.dropFirst(5)))),
              case .authentication(.saslContinue(let serverFirst)) = try backend(cont),
              case .success(let clientFinal) = client.receiveServerFirst(serverFirst),
              case .authenticated(let login, _) = front.passwordReceived(Frame(type: UInt8(ascii: "p"), payload: clientFinal)) else {
            return XCTFail("client login did not complete")
        }
        let clientKey = try XCTUnwrap(login.scramClientKey)
        var m = ServerLoginStateMachine(user: user, credential: .scramKeys(clientKey: clientKey, serverKey: secret.serverKey), crypto: crypto)
        _ = try runSCRAM(&m, secret: secret)
        try finishLogin(&m)
    }

    func testSCRAMWithWrongPasswordIsRejectedByTheServer() throws {
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain("wrong")), crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        let initial = try sentPassword(m.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))))
        let (_, clientFirst) = try XCTUnwrap(SASLInitialResponse.parse(initial.payload))
        guard case .success(let serverFirst) = server.receiveClientFirst(clientFirst) else { return XCTFail("client-first") }
        let response = try sentPassword(m.received(.authentication(.saslContinue(data: serverFirst))))
        guard case .failure(.wrongPassword) = server.receiveClientFinal(response.payload) else { return XCTFail("proof accepted") }
        // Postgres then sends its ErrorResponse, which the machine passes on unchanged.
        let error = try backend(ProxyMessages.error(code: "28P01", message: "password authentication failed for user \"app\""))
        guard case .error(let sent) = error else { return XCTFail("decoded \(error)") }
        XCTAssertEqual(try failFields(m.received(error)), sent)
    }

    func testSCRAMWithBadServerSignatureFails() throws {
        let secret = SCRAM.makeSecret(password: password, crypto: crypto)
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        let initial = try sentPassword(m.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))))
        let (_, clientFirst) = try XCTUnwrap(SASLInitialResponse.parse(initial.payload))
        guard case .success(let serverFirst) = server.receiveClientFirst(clientFirst) else { return XCTFail("client-first") }
        _ = try sentPassword(m.received(.authentication(.saslContinue(data: serverFirst))))
        let forged = Array("v=".utf8) + AuthBase64.encode(Array(repeating: 0, count: 32))
        XCTAssertEqual(try failFields(m.received(.authentication(.saslFinal(data: forged)))).sqlState, "08006")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testSCRAMWithSCRAMSecretOnlyFailsWith28P01() throws {
        // A stored SCRAM secret cannot answer a server's challenge without a client's keys.
        var m = ServerLoginStateMachine(user: user, credential: .secret(.scram(SCRAM.makeSecret(password: password, crypto: crypto))), crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"])))).sqlState, "28P01")
    }

    func testSCRAMWithNoCredentialFailsWith28P01() throws {
        var m = ServerLoginStateMachine(user: user, credential: .none, crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"])))).sqlState, "28P01")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testSASLWithoutSCRAMSHA256Fails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.authentication(.sasl(mechanisms: ["OAUTHBEARER"])))).sqlState, "08006")
    }

    func testSASLContinueWithoutSASLFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        XCTAssertEqual(try failFields(m.received(.authentication(.saslContinue(data: Array("r=x,s=AA==,i=1".utf8))))).sqlState, "08006")
    }

    func testUnsupportedAuthenticationMethodFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        // 7 = AuthenticationGSS.
        XCTAssertEqual(try failFields(m.received(.authentication(.unsupported(code: 7)))).sqlState, "08006")
    }

    // MARK: Server errors

    func testErrorResponseFromServerFailsCarryingItsFields() throws {
        var m = ServerLoginStateMachine(user: user, credential: .secret(.plain(password)), crypto: crypto)
        let error = try backend(ProxyMessages.error(code: "3D000", message: "database \"nope\" does not exist", detail: "d"))
        guard case .error(let fields) = error else { return XCTFail("decoded \(error)") }
        XCTAssertEqual(fields.sqlState, "3D000")
        let failed = try failFields(m.received(error))
        XCTAssertEqual(failed, fields)
        XCTAssertEqual(failed.message, "database \"nope\" does not exist")
        XCTAssertEqual(failed.fields[UInt8(ascii: "D")], "d")
        guard case .failed = m.state else { return XCTFail("state \(m.state)") }
    }

    func testErrorResponseAfterAuthenticationOkFails() throws {
        var m = ServerLoginStateMachine(user: user, credential: .none, crypto: crypto)
        XCTAssertEqual(m.received(.authentication(.ok)), .none)
        let fields = ErrorFields(fields: [UInt8(ascii: "S"): "FATAL", UInt8(ascii: "C"): "53300", UInt8(ascii: "M"): "too many clients"])
        XCTAssertEqual(try failFields(m.received(.error(fields))), fields)
    }
}

/// OpenSSL crypto that counts PBKDF2 runs.
final class CountingCrypto: CryptoProvider, @unchecked Sendable {
    let base: CryptoProvider
    private(set) var pbkdf2Calls = 0
    init(_ base: CryptoProvider) { self.base = base }
    func sha256(_ data: [UInt8]) -> [UInt8] { base.sha256(data) }
    func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] { base.hmacSHA256(key: key, data: data) }
    func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        pbkdf2Calls += 1
        return base.pbkdf2SHA256(password: password, salt: salt, iterations: iterations)
    }
    func md5(_ data: [UInt8]) -> [UInt8] { base.md5(data) }
    func randomBytes(_ count: Int) -> [UInt8] { base.randomBytes(count) }
}
