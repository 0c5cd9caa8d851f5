// Transcripts of the proxy negotiating TLS with a server (ServerTLSStateMachine): SSLRequest, 'S'/'N' per
// server_tls_sslmode, injected plaintext after 'S', and the handshake's outcome.
import XCTest
import ProxyCore

final class ServerTLSStateMachineTests: XCTestCase {
    private let s = UInt8(ascii: "S")
    private let n = UInt8(ascii: "N")

    func testDisableSendsTheStartupPacketAtOnce() {
        var m = ServerTLSStateMachine(mode: .disable)
        XCTAssertEqual(m.connected(), .proceed(encrypted: false))
        XCTAssertEqual(m.state, .ready(encrypted: false))
    }

    func testEveryOtherModeUpgradesOnS() {
        for mode in [ServerTLSMode.prefer, .require, .verifyCA, .verifyFull] {
            var m = ServerTLSStateMachine(mode: mode)
            XCTAssertEqual(m.connected(), .sendSSLRequest)
            XCTAssertEqual(m.responseReceived(s, trailingBytes: 0), .startTLS)
            XCTAssertEqual(m.handshakeCompleted(), .proceed(encrypted: true))
            XCTAssertEqual(m.state, .ready(encrypted: true))
        }
    }

    func testPreferFallsBackToPlaintextOnN() {
        var m = ServerTLSStateMachine(mode: .prefer)
        _ = m.connected()
        XCTAssertEqual(m.responseReceived(n, trailingBytes: 0), .proceed(encrypted: false))
    }

    func testRequireAndVerifyFailOnN() {
        for mode in [ServerTLSMode.require, .verifyCA, .verifyFull] {
            var m = ServerTLSStateMachine(mode: mode)
            _ = m.connected()
            XCTAssertEqual(m.responseReceived(n, trailingBytes: 0),
                           .fail(reason: "server does not support TLS, but server_tls_sslmode = \(mode.rawValue) requires it"))
            XCTAssertEqual(m.state, .failed)
        }
    }

    func testPlaintextAfterSIsRefused() {
        var m = ServerTLSStateMachine(mode: .require)
        _ = m.connected()
        XCTAssertEqual(m.responseReceived(s, trailingBytes: 5), .fail(reason: "received unencrypted data after SSL response"))
    }

    func testGarbageAnswerFails() {
        var m = ServerTLSStateMachine(mode: .prefer)
        _ = m.connected()
        guard case .fail(let reason) = m.responseReceived(0x16, trailingBytes: 0) else { return XCTFail() }
        XCTAssertEqual(reason, "received invalid response to SSL negotiation: 0x16")
        var e = ServerTLSStateMachine(mode: .prefer)
        _ = e.connected()
        guard case .fail = e.responseReceived(UInt8(ascii: "E"), trailingBytes: 20) else { return XCTFail() }
    }

    func testHandshakeFailureNamesTheReason() {
        var m = ServerTLSStateMachine(mode: .verifyFull)
        _ = m.connected()
        _ = m.responseReceived(s, trailingBytes: 0)
        XCTAssertEqual(m.handshakeFailed("certificate verify failed: hostname mismatch"),
                       .fail(reason: "TLS handshake with the server failed: certificate verify failed: hostname mismatch"))
    }

    func testOutOfOrderEventsFail() {
        var m = ServerTLSStateMachine(mode: .require)
        guard case .fail = m.responseReceived(s, trailingBytes: 0) else { return XCTFail() }
        var h = ServerTLSStateMachine(mode: .require)
        _ = h.connected()
        guard case .fail = h.handshakeCompleted() else { return XCTFail() }
    }

    func testModesSayWhatTheyVerify() {
        XCTAssertEqual(ServerTLSMode.allCases.filter(\.verifiesCertificate), [.verifyCA, .verifyFull])
        XCTAssertEqual(ServerTLSMode.allCases.filter(\.verifiesHostName), [.verifyFull])
        XCTAssertEqual(ClientTLSMode.allCases.filter(\.requiresTLS), [.require, .verifyCA, .verifyFull])
        XCTAssertEqual(ClientTLSMode.allCases.filter(\.requiresCertificate), [.verifyCA, .verifyFull])
    }
}
