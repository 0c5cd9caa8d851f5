import XCTest
@testable import ProxyCore

final class PlainTransactionStatementTests: XCTestCase {
    private func tag(_ text: String, nul: Bool = true) -> String? {
        var payload = Array(text.utf8)
        if nul { payload.append(0) }
        return payload.withUnsafeBytes { PlainTransactionStatement.beginTag(payload: $0) }
    }

    func testPlainTransactionStartsGiveTheirTags() {
        for text in ["BEGIN", "begin", "BEGIN;", " begin ; ", "\tBEGIN\n", "Begin Work", "BEGIN TRANSACTION;", "begin\ntransaction"] {
            XCTAssertEqual(tag(text), "BEGIN", text)
        }
        for text in ["START TRANSACTION", "start transaction;", "  Start\tTransaction ;  "] {
            XCTAssertEqual(tag(text), "START TRANSACTION", text)
        }
    }

    func testAnythingElseIsLeftToTheServer() {
        let others = [
            "", ";", "BEGIN READ ONLY", "BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN; SELECT 1", "BEGIN;;",
            "BEGIN WORK TRANSACTION", "START", "START WORK", "TRANSACTION", "WORK", "BEGINX", "BEGIN1", "BEGIN_",
            "BEGI", "/* c */ BEGIN", "BEGIN -- c", "BEGIN/**/", "SELECT 1", "begin; commit", "COMMIT", "ROLLBACK",
            "BEGIN TRANSACTION READ WRITE", "BEGIN \u{00e9}", "BEGIN\u{0}x", "END",
        ]
        for text in others { XCTAssertNil(tag(text), text) }
    }

    func testPlainCommitsAreRecognised() {
        func commit(_ text: String) -> Bool {
            (Array(text.utf8) + [0]).withUnsafeBytes { PlainTransactionStatement.isCommit(payload: $0) }
        }
        for text in ["COMMIT", "commit;", " End ", "END;", "COMMIT WORK", "end transaction ;", "Commit\nTransaction"] {
            XCTAssertTrue(commit(text), text)
        }
        for text in ["COMMIT AND CHAIN", "COMMIT PREPARED 'x'", "ROLLBACK", "END; SELECT 1", "/* c */ COMMIT", "COMMITX",
                     "BEGIN", "START TRANSACTION", "WORK", "END WORK TRANSACTION", "", "COMMIT;;"] {
            XCTAssertFalse(commit(text), text)
        }
        XCTAssertNil((Array("COMMIT".utf8) + [0]).withUnsafeBytes { PlainTransactionStatement.beginTag(payload: $0) })
        XCTAssertFalse(Array("COMMIT".utf8).withUnsafeBytes { PlainTransactionStatement.isCommit(payload: $0) })
    }

    func testTheTerminatingNulIsRequired() {
        XCTAssertNil(tag("BEGIN", nul: false))
        XCTAssertNil([UInt8]([0]).withUnsafeBytes { PlainTransactionStatement.beginTag(payload: $0) })
        XCTAssertNil([UInt8]().withUnsafeBytes { PlainTransactionStatement.beginTag(payload: $0) })
    }
}
