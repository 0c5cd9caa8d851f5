// Tests for ProxyCore's authentication logic (auth_file, md5, SCRAM-SHA-256) driven as
// message transcripts, with OpenSSLCrypto from ProxyIO supplying the primitives.
import XCTest
import ProxyCore
import ProxyIO

final class AuthTests: XCTestCase {
    let crypto = OpenSSLCrypto()

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
    private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
    private func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    private func unwrap<T>(_ r: Result<T, AuthFailure>, file: StaticString = #filePath, line: UInt = #line) throws -> T {
        switch r {
        case let .success(v): return v
        case let .failure(f):
            XCTFail("unexpected failure \(f)", file: file, line: line)
            throw f
        }
    }

    private func failure<T>(_ r: Result<T, AuthFailure>) -> AuthFailure? {
        if case let .failure(f) = r { return f }
        return nil
    }

    // MARK: RFC 7677 test vector

    let rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
    let rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    let rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    let rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    let rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    let rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

    func testRFC7677ClientExchange() throws {
        var client = SCRAMClientExchange(user: "user", credential: .password("pencil"), crypto: crypto,
                                         nonce: bytes(rfcClientNonce), sendsUserName: true)
        XCTAssertEqual(text(client.clientFirstMessage()), rfcClientFirst)
        let final = try unwrap(client.receiveServerFirst(bytes(rfcServerFirst)))
        XCTAssertEqual(text(final), rfcClientFinal)
        _ = try unwrap(client.receiveServerFinal(bytes(rfcServerFinal)))
        XCTAssertTrue(client.succeeded)
    }

    func testRFC7677ServerExchange() throws {
        let salt = try XCTUnwrap(AuthBase64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        let secret = SCRAM.makeSecret(password: "pencil", salt: salt, iterations: 4096, crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto, nonce: bytes(rfcServerNonce))
        XCTAssertEqual(text(try unwrap(server.receiveClientFirst(bytes(rfcClientFirst)))), rfcServerFirst)
        XCTAssertNil(server.clientKey)
        XCTAssertEqual(text(try unwrap(server.receiveClientFinal(bytes(rfcClientFinal)))), rfcServerFinal)
        XCTAssertEqual(server.clientKey?.count, 32)
    }

    func testLibpqStyleClientFirstSendsEmptyUserName() {
        var client = SCRAMClientExchange(user: "alice", credential: .password("x"), crypto: crypto, nonce: bytes("abc"))
        XCTAssertEqual(text(client.clientFirstMessage()), "n,,n=,r=abc")
        var random = SCRAMClientExchange(user: "alice", credential: .password("x"), crypto: crypto)
        let first = text(random.clientFirstMessage())
        XCTAssertTrue(first.hasPrefix("n,,n=,r="))
        XCTAssertEqual(first.count, "n,,n=,r=".count + 24)
    }

    func testRFCServerRejectsWrongProofWhenSignatureFlipped() throws {
        var client = SCRAMClientExchange(user: "user", credential: .password("pencil"), crypto: crypto,
                                         nonce: bytes(rfcClientNonce), sendsUserName: true)
        _ = client.clientFirstMessage()
        _ = try unwrap(client.receiveServerFirst(bytes(rfcServerFirst)))
        XCTAssertEqual(failure(client.receiveServerFinal(bytes("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))),
                       .malformed("incorrect server signature"))
        XCTAssertFalse(client.succeeded)
    }

    // MARK: Secrets

    /// Made with Python: hashlib.pbkdf2_hmac("sha256", b"s3cr3t-pass", bytes(range(16)), 4096) and the RFC 5802 keys.
    let knownSecretText = "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$XyS96MnWKPCxnSoJJwpzB+WwjzuWZW2SkHwERa5f+kM=:RsB4qdpB/5HP6Lvx7ydQPyLLQOquPnNJSEuhaEQ6H6I="

    func testSCRAMSecretParseAndMake() throws {
        let parsed = try XCTUnwrap(SCRAMSecret(parsing: knownSecretText))
        XCTAssertEqual(parsed.iterations, 4096)
        XCTAssertEqual(parsed.salt, Array(0..<16))
        XCTAssertEqual(parsed.encoded, knownSecretText)
        let made = SCRAM.makeSecret(password: "s3cr3t-pass", salt: Array(0..<16), iterations: 4096, crypto: crypto)
        XCTAssertEqual(made, parsed)
        XCTAssertEqual(Secret(parsing: knownSecretText), .scram(parsed))

        let random = SCRAM.makeSecret(password: "pw", crypto: crypto)
        XCTAssertEqual(random.iterations, 4096)
        XCTAssertEqual(random.salt.count, 16)
        XCTAssertEqual(SCRAMSecret(parsing: random.encoded), random)
    }

    func testSecretClassification() {
        XCTAssertEqual(Secret(parsing: "md5" + String(repeating: "a", count: 32)), .md5("md5" + String(repeating: "a", count: 32)))
        XCTAssertEqual(Secret(parsing: "md5abc"), .plain("md5abc"))
        XCTAssertEqual(Secret(parsing: "md5" + String(repeating: "g", count: 32)), .plain("md5" + String(repeating: "g", count: 32)))
        XCTAssertEqual(Secret(parsing: "SCRAM-SHA-256$x:AAAA$AAAA:AAAA"), .plain("SCRAM-SHA-256$x:AAAA$AAAA:AAAA"))
        XCTAssertEqual(Secret(parsing: "hunter2"), .plain("hunter2"))
        XCTAssertNil(SCRAMSecret(parsing: "SCRAM-SHA-256$0:AAECAwQFBgcICQoLDA0ODw==$XyS96MnWKPCxnSoJJwpzB+WwjzuWZW2SkHwERa5f+kM=:RsB4qdpB/5HP6Lvx7ydQPyLLQOquPnNJSEuhaEQ6H6I="))
    }

    // MARK: SCRAM exchanges against each other

    /// Runs a full client/server exchange; returns the server's result on the final message.
    private func exchange(secret: SCRAMSecret, credential: SCRAMClientExchange.Credential)
        throws -> (SCRAMServerExchange, SCRAMClientExchange, Result<[UInt8], AuthFailure>) {
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        var client = SCRAMClientExchange(user: "alice", credential: credential, crypto: crypto)
        let serverFirst = try unwrap(server.receiveClientFirst(client.clientFirstMessage()))
        let clientFinal = try unwrap(client.receiveServerFirst(serverFirst))
        let serverFinal = server.receiveClientFinal(clientFinal)
        if case let .success(v) = serverFinal { _ = try unwrap(client.receiveServerFinal(v)) }
        return (server, client, serverFinal)
    }

    func testExchangeWithParsedSecret() throws {
        let secret = try XCTUnwrap(SCRAMSecret(parsing: knownSecretText))
        let (server, client, result) = try exchange(secret: secret, credential: .password("s3cr3t-pass"))
        _ = try unwrap(result)
        XCTAssertTrue(client.succeeded)
        XCTAssertNotNil(server.clientKey)
    }

    func testWrongPassword() throws {
        let secret = SCRAM.makeSecret(password: "right", crypto: crypto)
        let (server, _, result) = try exchange(secret: secret, credential: .password("wrong"))
        XCTAssertEqual(failure(result), .wrongPassword)
        XCTAssertNil(server.clientKey)
    }

    func testTamperedNonceFails() throws {
        let secret = SCRAM.makeSecret(password: "pw", crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        var client = SCRAMClientExchange(user: "", credential: .password("pw"), crypto: crypto, nonce: bytes("clientnonce"))
        let serverFirst = try unwrap(server.receiveClientFirst(client.clientFirstMessage()))
        let clientFinal = text(try unwrap(client.receiveServerFirst(serverFirst)))
        let tampered = clientFinal.replacingOccurrences(of: "r=clientnonce", with: "r=clientnoncX")
        XCTAssertEqual(failure(server.receiveClientFinal(bytes(tampered))), .malformed("nonce does not match"))
        XCTAssertNil(server.clientKey)

        // A server nonce that does not extend the client's is refused by the client.
        var client2 = SCRAMClientExchange(user: "", credential: .password("pw"), crypto: crypto, nonce: bytes("clientnonce"))
        _ = client2.clientFirstMessage()
        XCTAssertEqual(failure(client2.receiveServerFirst(bytes("r=othernonce123,s=AAECAw==,i=4096"))),
                       .malformed("server nonce does not start with client nonce"))
    }

    func testTamperedProofAndBinding() throws {
        let secret = SCRAM.makeSecret(password: "pw", crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        var client = SCRAMClientExchange(user: "", credential: .password("pw"), crypto: crypto)
        let serverFirst = try unwrap(server.receiveClientFirst(client.clientFirstMessage()))
        let clientFinal = text(try unwrap(client.receiveServerFirst(serverFirst)))
        var badBinding = server
        XCTAssertEqual(failure(badBinding.receiveClientFinal(bytes(clientFinal.replacingOccurrences(of: "c=biws", with: "c=eSws")))),
                       .malformed("channel binding data does not match client-first-message"))
        var shortProof = server
        XCTAssertEqual(failure(shortProof.receiveClientFinal(bytes(String(clientFinal[..<clientFinal.range(of: ",p=")!.lowerBound]) + ",p=AAAA"))),
                       .malformed("invalid client proof"))
    }

    func testClientFirstRejections() {
        let secret = SCRAM.makeSecret(password: "pw", crypto: crypto)
        func first(_ m: String) -> AuthFailure? {
            var server = SCRAMServerExchange(secret: secret, crypto: crypto)
            return failure(server.receiveClientFirst(bytes(m)))
        }
        XCTAssertEqual(first("p=tls-server-end-point,,n=,r=abc"), .unsupported("channel binding (SCRAM-SHA-256-PLUS) is not supported"))
        XCTAssertEqual(first("n,a=admin,n=,r=abc"), .unsupported("authorization identity is not supported"))
        XCTAssertEqual(first("n,,m=ext,n=,r=abc"), .unsupported("mandatory SCRAM extensions are not supported"))
        XCTAssertEqual(first("x,,n=,r=abc"), .malformed("invalid channel binding flag in client-first-message"))
        XCTAssertEqual(first("n,,n=,r="), .malformed("client-first-message has no valid nonce"))
        XCTAssertEqual(first("n,,n=,r=abc,garbage"), .malformed("invalid client-first-message"))
        XCTAssertNil(first("n,,n=,r=abc,x=ext"))
        XCTAssertEqual(first(""), .malformed("empty client-first-message"))
        XCTAssertNil(first("y,,n=,r=abc"))
        var server = SCRAMServerExchange(secret: secret, crypto: crypto)
        XCTAssertEqual(failure(server.receiveClientFinal(bytes("c=biws,r=abc,p=AAAA"))), .malformed("unexpected client-final-message"))
    }

    func testClientWithYFlagAuthenticates() throws {
        // A client that supports channel binding but was not offered it sends "y,,"; c= is then "eSws".
        let secret = SCRAM.makeSecret(password: "pw", crypto: crypto)
        var server = SCRAMServerExchange(secret: secret, crypto: crypto, nonce: bytes("SERVER"))
        let serverFirst = text(try unwrap(server.receiveClientFirst(bytes("y,,n=,r=CLIENT"))))
        XCTAssertTrue(serverFirst.hasPrefix("r=CLIENTSERVER,s="))
        let salted = crypto.pbkdf2SHA256(password: bytes("pw"), salt: secret.salt, iterations: secret.iterations)
        let clientKey = crypto.hmacSHA256(key: salted, data: bytes("Client Key"))
        let withoutProof = "c=eSws,r=CLIENTSERVER"
        let authMessage = bytes("n=,r=CLIENT," + serverFirst + "," + withoutProof)
        let signature = crypto.hmacSHA256(key: crypto.sha256(clientKey), data: authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        _ = try unwrap(server.receiveClientFinal(bytes(withoutProof + ",p=" + AuthBase64.encodeString(proof))))
        XCTAssertEqual(server.clientKey, clientKey)
    }

    func testClientKeyPassThrough() throws {
        let secret = try XCTUnwrap(SCRAMSecret(parsing: knownSecretText))
        let (front, _, result) = try exchange(secret: secret, credential: .password("s3cr3t-pass"))
        _ = try unwrap(result)
        let clientKey = try XCTUnwrap(front.clientKey)
        XCTAssertEqual(crypto.sha256(clientKey), secret.storedKey)

        let (_, backendClient, backendResult) = try exchange(
            secret: secret, credential: .keys(clientKey: clientKey, serverKey: secret.serverKey))
        _ = try unwrap(backendResult)
        XCTAssertTrue(backendClient.succeeded)

        // Keys for another secret fail at the server.
        let other = SCRAM.makeSecret(password: "s3cr3t-pass", crypto: crypto)
        let (_, _, mismatch) = try exchange(secret: other, credential: .keys(clientKey: clientKey, serverKey: secret.serverKey))
        XCTAssertEqual(failure(mismatch), .wrongPassword)
    }

    func testServerFinalErrors() throws {
        var client = SCRAMClientExchange(user: "user", credential: .password("pencil"), crypto: crypto,
                                         nonce: bytes(rfcClientNonce), sendsUserName: true)
        _ = client.clientFirstMessage()
        _ = try unwrap(client.receiveServerFirst(bytes(rfcServerFirst)))
        XCTAssertEqual(failure(client.receiveServerFinal(bytes("e=invalid-proof"))), .wrongPassword)

        var bad = SCRAMClientExchange(user: "", credential: .password("p"), crypto: crypto, nonce: bytes("abc"))
        _ = bad.clientFirstMessage()
        XCTAssertEqual(failure(bad.receiveServerFirst(bytes("r=abcdef,s=AAECAw==,i=0"))),
                       .malformed("invalid iteration count in server-first-message"))
        XCTAssertEqual(failure(bad.receiveServerFinal(bytes(rfcServerFinal))), .malformed("unexpected server-final-message"))
    }

    // MARK: MD5

    /// Python: "md5" + md5(md5(b"passwordpostgres").hexdigest().encode() + bytes([1, 2, 3, 4])).hexdigest()
    let md5Expected = "md598511ceaec347a656f032c7f2a16ef17"
    let md5Stored = "md532e12f215ba27cb750c9e093ce4b5127"

    func testMD5Response() {
        let salt: [UInt8] = [0x01, 0x02, 0x03, 0x04]
        XCTAssertEqual(MD5Password.response(user: "postgres", secret: .plain("password"), salt: salt, crypto: crypto), md5Expected)
        XCTAssertEqual(MD5Password.response(user: "postgres", secret: .md5(md5Stored), salt: salt, crypto: crypto), md5Expected)
        XCTAssertEqual(MD5Password.response(user: "postgres", secret: .md5(md5Stored.uppercased().replacingOccurrences(of: "MD5", with: "md5")),
                                            salt: salt, crypto: crypto), md5Expected)
        XCTAssertNil(MD5Password.response(user: "postgres", secret: .scram(SCRAM.makeSecret(password: "password", crypto: crypto)),
                                          salt: salt, crypto: crypto))
    }

    func testMD5Verify() {
        let salt: [UInt8] = [0x01, 0x02, 0x03, 0x04]
        XCTAssertTrue(MD5Password.verify(user: "postgres", secret: .plain("password"), salt: salt, response: md5Expected, crypto: crypto))
        XCTAssertTrue(MD5Password.verify(user: "postgres", secret: Secret(parsing: md5Stored), salt: salt, response: md5Expected, crypto: crypto))
        XCTAssertFalse(MD5Password.verify(user: "postgres", secret: .plain("wrong"), salt: salt, response: md5Expected, crypto: crypto))
        XCTAssertFalse(MD5Password.verify(user: "other", secret: .plain("password"), salt: salt, response: md5Expected, crypto: crypto))
        XCTAssertFalse(MD5Password.verify(user: "postgres", secret: .plain("password"), salt: [0, 0, 0, 0], response: md5Expected, crypto: crypto))
        XCTAssertFalse(MD5Password.verify(user: "postgres", secret: .plain("password"), salt: salt, response: "", crypto: crypto))
    }

    // MARK: auth_file

    func testAuthFileParse() throws {
        let file = [
            "; PgBouncer userlist",
            "# another comment",
            "",
            #""plainuser" "hunter2""#,
            "  \"md5user\"\t\"\(md5Stored)\"  trailing fields ignored",
            "\"scramuser\" \"\(knownSecretText)\"",
            #""quo""te" "pa""ss""""#,
            "\"empty\" \"\"\r",
        ].joined(separator: "\n")
        let users = try AuthFile.parse(file)
        XCTAssertEqual(users.count, 5)
        XCTAssertEqual(users["plainuser"], .plain("hunter2"))
        XCTAssertEqual(users["md5user"], .md5(md5Stored))
        XCTAssertEqual(users["scramuser"], .scram(try XCTUnwrap(SCRAMSecret(parsing: knownSecretText))))
        XCTAssertEqual(users["quo\"te"], .plain("pa\"ss\""))
        XCTAssertEqual(users["empty"], .plain(""))
    }

    func testAuthFileMalformedLines() {
        let cases: [(String, AuthFileError)] = [
            ("\"a\" \"b\"\nbob secret\n", .malformedLine(2, "expected a double-quoted user name")),
            ("\n\n\"a\"\n", .malformedLine(3, "expected a double-quoted password after the user name")),
            ("\"a\" \"unterminated\n", .malformedLine(1, "expected a double-quoted password after the user name")),
            ("\"a\"\"b\"", .malformedLine(1, "expected a double-quoted password after the user name")),
            ("\"a\" \"b\"x", .malformedLine(1, "unexpected text after the password")),
            ("\"\" \"b\"", .malformedLine(1, "empty user name")),
        ]
        for (input, expected) in cases {
            XCTAssertThrowsError(try AuthFile.parse(input), input) { error in
                XCTAssertEqual(error as? AuthFileError, expected, input)
            }
        }
        XCTAssertEqual(AuthFileError.malformedLine(3, "x").description, "auth_file line 3: x")
    }

    // MARK: Primitives

    func testOpenSSLCryptoKnownAnswers() {
        XCTAssertEqual(hex(crypto.sha256(bytes("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(crypto.hmacSHA256(key: bytes("key"), data: bytes("The quick brown fox jumps over the lazy dog"))),
                       "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        XCTAssertEqual(hex(crypto.md5([])), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(crypto.hmacSHA256(key: [], data: []).count, 32)
        XCTAssertEqual(crypto.randomBytes(18).count, 18)
        XCTAssertNotEqual(crypto.randomBytes(16), crypto.randomBytes(16))
    }

    func testBase64() {
        for n in 0..<10 {
            let data = Array(UInt8(0)..<UInt8(n))
            XCTAssertEqual(AuthBase64.decode(AuthBase64.encode(data)), data)
        }
        XCTAssertEqual(AuthBase64.encodeString(bytes("n,,")), "biws")
        XCTAssertNil(AuthBase64.decode("abc"))
        XCTAssertNil(AuthBase64.decode("a=bc"))
        XCTAssertNil(AuthBase64.decode("ab=c"))
        XCTAssertNil(AuthBase64.decode("ab==AAAA"))
        XCTAssertNil(AuthBase64.decode("ab!="))
    }
}
