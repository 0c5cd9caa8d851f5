// Parse, Bind head, Describe and Close: round trips, malformed payloads, a Bind head split at every
// offset, and a rewritten Bind head checked byte for byte against a Bind re-encoded in full.
import XCTest
@testable import PGWire

final class ExtendedMessagesTests: XCTestCase {
    /// The payload of a whole message (bytes after the 5-byte header), checking the length field.
    func payload(_ message: [UInt8], type: UInt8) -> [UInt8] {
        XCTAssertEqual(message.first, type)
        XCTAssertEqual(Int(Int32(bigEndianBytes: message, at: 1)), message.count - 1)
        return Array(message[5...])
    }

    /// A Bind built by hand: portal, statement, parameter formats, values (nil = NULL), result formats.
    func bind(portal: String, statement: String, formats: [Int16], values: [[UInt8]?], resultFormats: [Int16]) -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.bind.rawValue)
        w.writeCString(portal)
        w.writeCString(statement)
        w.writeInt16(Int16(formats.count))
        for f in formats { w.writeInt16(f) }
        w.writeInt16(Int16(values.count))
        for v in values {
            if let v {
                w.writeInt32(Int32(v.count))
                w.writeBytes(v)
            } else {
                w.writeInt32(-1)
            }
        }
        w.writeInt16(Int16(resultFormats.count))
        for f in resultFormats { w.writeInt16(f) }
        w.finish()
        return w.bytes
    }

    // MARK: Parse

    func testParseRoundTrip() throws {
        for m in [ParseMessage(name: "s1", query: "SELECT $1::int + $2", parameterTypes: [23, 0]),
                  ParseMessage(name: "", query: "SELECT 1"),
                  ParseMessage(name: "stmt_ü", query: "SELECT 'ü'", parameterTypes: [25, -1, 2_147_483_647])] {
            let bytes = m.encoded()
            XCTAssertEqual(try ParseMessage(payload: payload(bytes, type: UInt8(ascii: "P"))), m)
        }
    }

    func testParseGoldenBytes() {
        let bytes = ParseMessage(name: "a", query: "q", parameterTypes: [23]).encoded()
        XCTAssertEqual(bytes, [0x50, 0, 0, 0, 14, 0x61, 0, 0x71, 0, 0, 1, 0, 0, 0, 23])
    }

    func testMalformedParseThrows() {
        let good = payload(ParseMessage(name: "s", query: "SELECT $1", parameterTypes: [23]).encoded(), type: 0x50)
        let bad: [[UInt8]] = [
            [],                                   // nothing
            Array("s".utf8),                      // name without NUL
            Array("s\0SELECT".utf8),              // query without NUL
            Array("s\0q\0".utf8),                 // no parameter count
            Array("s\0q\0".utf8) + [0, 1, 0, 0],  // count 1, truncated OID
            Array("s\0q\0".utf8) + [0xff, 0xff],  // negative count
            good + [0],                           // trailing byte
            Array(good.dropLast()),               // short OID
        ]
        for p in bad {
            XCTAssertThrowsError(try ParseMessage(payload: p), "\(p)") { error in
                XCTAssertEqual(error as? ProtocolViolation, .malformedMessage(type: UInt8(ascii: "P")))
            }
        }
        // Every strict prefix of a good payload is malformed.
        for cut in 0..<good.count {
            XCTAssertThrowsError(try ParseMessage(payload: Array(good[..<cut])), "cut \(cut)")
        }
    }

    // MARK: Bind head

    func testBindHeadAtEveryPrefix() throws {
        let message = bind(portal: "p1", statement: "client_stmt", formats: [1], values: [[0, 0, 0, 7], nil],
                           resultFormats: [0])
        let p = payload(message, type: 0x42)
        let headLength = 3 + 12
        for cut in 0...p.count {
            let head = try BindHead.parse(prefix: Array(p[..<cut]))
            if cut < headLength {
                XCTAssertNil(head, "cut \(cut)")
            } else {
                XCTAssertEqual(head, BindHead(portal: "p1", statement: "client_stmt", headLength: headLength), "cut \(cut)")
            }
        }
    }

    func testBindHeadUnnamed() throws {
        let p = payload(bind(portal: "", statement: "", formats: [], values: [], resultFormats: []), type: 0x42)
        XCTAssertEqual(try BindHead.parse(prefix: p), BindHead(portal: "", statement: "", headLength: 2))
        XCTAssertNil(try BindHead.parse(prefix: []))
        XCTAssertNil(try BindHead.parse(prefix: [0]))
    }

    func testBindHeadRejectsOverlongNames() {
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 40)
        // Up to the limit without NUL: still waiting.
        XCTAssertNil(try BindHead.parse(prefix: long, maxNameLength: 40))
        XCTAssertThrowsError(try BindHead.parse(prefix: long, maxNameLength: 39)) { error in
            XCTAssertEqual(error as? ProtocolViolation, .malformedMessage(type: UInt8(ascii: "B")))
        }
        // The statement name is limited too.
        XCTAssertThrowsError(try BindHead.parse(prefix: [0] + long, maxNameLength: 39))
        XCTAssertNil(try BindHead.parse(prefix: [0] + long, maxNameLength: 40))
        // A name of exactly the limit is fine.
        XCTAssertEqual(try BindHead.parse(prefix: long + [0, 0], maxNameLength: 40)?.headLength, 42)
        // Default limit.
        XCTAssertThrowsError(try BindHead.parse(prefix: [UInt8](repeating: 0x61, count: 1025)))
        XCTAssertNil(try BindHead.parse(prefix: [UInt8](repeating: 0x61, count: 1024)))
    }

    func testBindHeadWholePayloadWithoutNamesThrows() {
        XCTAssertThrowsError(try BindHead.parse(prefix: Array("p\0s".utf8), payloadLength: 3))
        XCTAssertThrowsError(try BindHead.parse(prefix: [], payloadLength: 0))
        XCTAssertNil(try BindHead.parse(prefix: Array("p\0s".utf8), payloadLength: 10))
        XCTAssertEqual(try BindHead.parse(prefix: Array("p\0s\0".utf8), payloadLength: 4)?.statement, "s")
    }

    func testRewrittenHeadMatchesFullReencoding() throws {
        let values: [[UInt8]?] = [Array("hello".utf8), nil, [], [1, 2, 3, 4, 5, 6, 7, 8]]
        for (old, new) in [("s1", "sy_1"), ("a_rather_long_client_statement_name", "sy_42"), ("x", "sy_1234567"),
                           ("same", "sy_9")] {
            for portal in ["", "portal_7"] {
                let original = bind(portal: portal, statement: old, formats: [0, 1], values: values, resultFormats: [1])
                let expected = bind(portal: portal, statement: new, formats: [0, 1], values: values, resultFormats: [1])
                let originalLength = Int(Int32(bigEndianBytes: original, at: 1))
                // The proxy peeks a bounded prefix of the payload.
                let prefix = Array(original[5..<min(original.count, 5 + 64)])
                let head = try XCTUnwrap(BindHead.parse(prefix: prefix))
                XCTAssertEqual(head.portal, portal)
                XCTAssertEqual(head.statement, old)
                let rewritten = head.rewrittenHead(statement: new, originalLength: originalLength)
                XCTAssertEqual(rewritten.count, 5 + portal.utf8.count + new.utf8.count + 2)
                let streamed = rewritten + original[(5 + head.headLength)...]
                XCTAssertEqual(streamed, expected, "\(old) -> \(new), portal '\(portal)'")
            }
        }
    }

    // MARK: Describe and Close

    func testDescribeAndCloseRoundTrip() throws {
        for kind in [UInt8(ascii: "S"), UInt8(ascii: "P")] {
            for name in ["", "s1", "sy_17"] {
                let d = DescribeMessage(kind: kind, name: name)
                XCTAssertEqual(try DescribeMessage(payload: payload(d.encoded(), type: UInt8(ascii: "D"))), d)
                let c = CloseMessage(kind: kind, name: name)
                XCTAssertEqual(try CloseMessage(payload: payload(c.encoded(), type: UInt8(ascii: "C"))), c)
            }
        }
        XCTAssertEqual(CloseMessage(kind: TargetKind.statement, name: "sy_3").encoded(),
                       [0x43, 0, 0, 0, 10, 0x53] + Array("sy_3".utf8) + [0])
    }

    func testMalformedDescribeAndCloseThrow() {
        let bad: [[UInt8]] = [[], [UInt8(ascii: "S")], [UInt8(ascii: "X"), 0], Array("Ss1".utf8), Array("Ss1\0\0".utf8)]
        for p in bad {
            XCTAssertThrowsError(try DescribeMessage(payload: p)) { error in
                XCTAssertEqual(error as? ProtocolViolation, .malformedMessage(type: UInt8(ascii: "D")))
            }
            XCTAssertThrowsError(try CloseMessage(payload: p)) { error in
                XCTAssertEqual(error as? ProtocolViolation, .malformedMessage(type: UInt8(ascii: "C")))
            }
        }
    }

    func testSynthesizedResponses() {
        XCTAssertEqual(ProxyMessages.parseComplete(), [0x31, 0, 0, 0, 4])
        XCTAssertEqual(ProxyMessages.bindComplete(), [0x32, 0, 0, 0, 4])
        XCTAssertEqual(ProxyMessages.closeComplete(), [0x33, 0, 0, 0, 4])
        XCTAssertEqual(ProxyMessages.sync(), [0x53, 0, 0, 0, 4])
        XCTAssertEqual(ProxyMessages.flush(), [0x48, 0, 0, 0, 4])
    }
}
