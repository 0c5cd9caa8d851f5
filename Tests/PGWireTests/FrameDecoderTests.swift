// Golden byte streams fed to the decoders split at every offset: a partial frame is never consumed,
// and bad lengths and versions are rejected with the right ProtocolViolation.
import XCTest
@testable import PGWire

final class FrameDecoderTests: XCTestCase {
    /// A captured-style server login stream: AuthenticationOk, two ParameterStatus, BackendKeyData, ReadyForQuery.
    let loginStream: [UInt8] = ProxyMessages.authenticationOk()
        + ProxyMessages.parameterStatus("server_version", "15.20")
        + ProxyMessages.parameterStatus("client_encoding", "UTF8")
        + ProxyMessages.backendKeyData(processID: 4242, secretKey: -17)
        + ProxyMessages.readyForQuery(.idle)

    func decodeAll(_ chunks: [[UInt8]]) throws -> [Frame] {
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        for chunk in chunks {
            decoder.append(chunk)
            while let f = try decoder.next() { frames.append(f) }
        }
        XCTAssertEqual(decoder.bufferedCount, 0)
        return frames
    }

    func testSplitAtEveryOffsetGivesTheSameFrames() throws {
        let whole = try decodeAll([loginStream])
        XCTAssertEqual(whole.count, 5)
        for cut in 0...loginStream.count {
            let parts = [Array(loginStream[..<cut]), Array(loginStream[cut...])]
            XCTAssertEqual(try decodeAll(parts), whole, "split at \(cut)")
        }
        // One byte at a time.
        XCTAssertEqual(try decodeAll(loginStream.map { [$0] }), whole)
    }

    func testDecodedMessages() throws {
        let frames = try decodeAll([loginStream])
        let messages = try frames.map { try BackendMessage($0) }
        XCTAssertEqual(messages, [
            .authentication(.ok),
            .parameterStatus(name: "server_version", value: "15.20"),
            .parameterStatus(name: "client_encoding", value: "UTF8"),
            .backendKeyData(processID: 4242, secretKey: -17),
            .readyForQuery(.idle),
        ])
    }

    func testPartialFrameIsNotConsumed() throws {
        var decoder = FrameDecoder()
        decoder.append(Array(loginStream[0..<8]))  // AuthenticationOk is 9 bytes
        XCTAssertNil(try decoder.next())
        XCTAssertEqual(decoder.bufferedCount, 8)
        decoder.append([loginStream[8]])
        XCTAssertEqual(try decoder.next(), Frame(type: UInt8(ascii: "R"), payload: [0, 0, 0, 0]))
    }

    func testBadLengthsAreViolations() {
        for (length, expectTooLarge) in [(Int32(-1), false), (0, false), (3, false), (Int32.max, true)] {
            var decoder = FrameDecoder(maxLength: 1 << 20)
            var w = MessageWriter()
            w.writeByte(UInt8(ascii: "Q"))
            w.writeInt32(length)
            decoder.append(w.bytes)
            XCTAssertThrowsError(try decoder.next()) { error in
                let v = error as! ProtocolViolation
                if expectTooLarge {
                    XCTAssertEqual(v, .messageTooLarge(type: UInt8(ascii: "Q"), length: Int(length)))
                } else {
                    XCTAssertEqual(v, .badLength(type: UInt8(ascii: "Q"), length: length))
                }
            }
        }
    }

    func testErrorResponseRoundTrip() throws {
        let bytes = ProxyMessages.error(code: "08P01", message: "bad", detail: "more")
        var d = FrameDecoder()
        d.append(bytes)
        let f = try XCTUnwrap(try d.next())
        guard case .error(let fields) = try BackendMessage(f) else { return XCTFail() }
        XCTAssertEqual(fields.sqlState, "08P01")
        XCTAssertEqual(fields.message, "bad")
        XCTAssertEqual(fields.severity, "FATAL")
    }
}

final class StartupDecoderTests: XCTestCase {
    func testStartupSplitAtEveryOffset() {
        let packet = ProxyMessages.startup(parameters: [("user", "alice"), ("database", "db"), ("application_name", "psql")])
        let stream = packet + ProxyMessages.query("select 1")
        for cut in 0..<packet.count {
            XCTAssertEqual(StartupDecoder.decode(Array(stream[..<cut])), .needMore, "prefix \(cut)")
        }
        XCTAssertEqual(StartupDecoder.decode(stream),
                       .packet(.startup(parameters: [("user", "alice"), ("database", "db"), ("application_name", "psql")]), consumed: packet.count))
    }

    func testSpecialRequests() {
        XCTAssertEqual(StartupDecoder.decode([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), .packet(.sslRequest, consumed: 8))
        XCTAssertEqual(StartupDecoder.decode([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]), .packet(.gssEncRequest, consumed: 8))
        XCTAssertEqual(StartupDecoder.decode(ProxyMessages.cancelRequest(processID: 7, secretKey: -9)),
                       .packet(.cancel(processID: 7, secretKey: -9), consumed: 16))
    }

    func testRejections() {
        var big = MessageWriter()
        big.writeInt32(10_001)
        XCTAssertEqual(StartupDecoder.decode(big.bytes), .violation(.startupTooLarge(10_001)))
        XCTAssertEqual(StartupDecoder.decode([0xff, 0xff, 0xff, 0xf0]), .violation(.startupTooSmall(-16)))
        XCTAssertEqual(StartupDecoder.decode([0, 0, 0, 4]), .violation(.startupTooSmall(4)))
        // Protocol 2.0 and 4.0 are refused as soon as the code arrives.
        XCTAssertEqual(StartupDecoder.decode([0, 0, 0, 40, 0, 2, 0, 0]), .violation(.unsupportedProtocol(0x0002_0000)))
        XCTAssertEqual(StartupDecoder.decode([0, 0, 0, 9, 0, 4, 0, 0, 0]), .violation(.unsupportedProtocol(0x0004_0000)))
        // "GET / HTTP/1.1": the length field reads as a huge number.
        XCTAssertEqual(StartupDecoder.decode(Array("GET / HTTP/1.1\r\n".utf8)), .violation(.startupTooLarge(0x4745_5420)))
        // No user, and a missing terminator.
        XCTAssertEqual(StartupDecoder.decode(ProxyMessages.startup(parameters: [("database", "x")])), .violation(.missingUser))
        var bad = ProxyMessages.startup(parameters: [("user", "u")])
        bad.removeLast()
        bad[3] -= 1
        XCTAssertEqual(StartupDecoder.decode(bad), .violation(.badStartupParameters))
    }
}
