// libpg_query (Postgres 15's own parser, as a library) behind ProxyCore's SQLParser: SQL text in, the JSON
// parse tree out. Each call is independent and thread-safe (libpg_query keeps a per-thread memory context).
import CPgQuery
import ProxyCore

public struct PgQueryParser: SQLParser {
    public init() {}

    public func parseJSON(_ sql: String) -> Result<String, SQLParseError> {
        // Ownership: pg_query_parse returns malloc'd strings in `result`, copied into Swift Strings here and
        // released by the deferred pg_query_free_parse_result, which is the only free of this result.
        let result = sql.withCString { pg_query_parse($0) }
        defer { pg_query_free_parse_result(result) }
        if let error = result.error {
            let message = error.pointee.message.map { String(cString: $0) } ?? "syntax error"
            return .failure(SQLParseError(message: message, cursorPosition: Int(error.pointee.cursorpos)))
        }
        guard let tree = result.parse_tree else {
            return .failure(SQLParseError(message: "parser returned no tree"))
        }
        return .success(String(cString: tree))
    }
}
