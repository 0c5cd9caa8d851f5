// The README's configuration reference comes from the key table: every key must be in it, as generated.
import Foundation
import XCTest
@testable import ProxyCore

final class ReadmeReferenceTests: XCTestCase {
    func testReadmeCarriesTheGeneratedReference() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let reference = ConfigKeys.markdownReference().trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(readme.contains(reference), "README's reference is stale: regenerate it with `switchyard --print-config-reference`")
        for key in ConfigKeys.all {
            XCTAssertTrue(readme.contains("`\(key.name)`"), "README lacks \(key.name)")
        }
    }
}
