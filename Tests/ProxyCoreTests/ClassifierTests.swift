// The read/write classifier as a table of statements -> route (and reason / transaction control), with the
// real libpg_query parser from ProxyIO and BuiltinFunctionCatalog plus two user functions; then the cache.
import XCTest
import ProxyCore
import ProxyIO

final class ClassifierTests: XCTestCase {
    static let catalog = BuiltinFunctionCatalog(extra: ["my_writer": .volatile, "my_reader": .stable])

    private func classifier() -> Classifier {
        Classifier(parser: PgQueryParser(), catalog: Self.catalog)
    }

    struct Case {
        var sql: String
        var route: Route
        var reason: String?
        var transaction: TransactionControl?

        init(_ sql: String, _ route: Route, _ reason: String? = nil, _ transaction: TransactionControl? = nil) {
            self.sql = sql
            self.route = route
            self.reason = reason
            self.transaction = transaction
        }
    }

    static let table: [Case] = [
        // MARK: Reads
        Case("SELECT 1", .replica, "select"),
        Case("select * from users where id = 42", .replica, "select"),
        Case("SELECT u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 10", .replica, "select"),
        Case("SELECT * FROM a LEFT JOIN b USING (id) FULL JOIN c ON true", .replica, "select"),
        Case("SELECT * FROM t WHERE id IN (SELECT user_id FROM orders WHERE total > 5)", .replica, "select"),
        Case("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", .replica, "select"),
        Case("SELECT (SELECT max(id) FROM t) AS m", .replica, "select"),
        Case("SELECT * FROM (SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1) s", .replica, "select"),
        Case("WITH x AS (SELECT * FROM t) SELECT * FROM x", .replica, "select"),
        Case("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r", .replica, "select"),
        Case("SELECT a FROM t UNION SELECT b FROM u EXCEPT SELECT c FROM v", .replica, "select"),
        Case("SELECT * FROM t ORDER BY a DESC LIMIT 10 OFFSET 20", .replica, "select"),
        Case("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", .replica, "select"),
        Case("SELECT DISTINCT ON (a) a, b FROM t", .replica, "select"),
        Case("SELECT * FROM t WHERE id = $1", .replica, "select"),
        Case("VALUES (1, 'a'), (2, 'b')", .replica, "values"),
        Case("TABLE users", .replica, "select"),
        Case("SHOW search_path", .replica, "show"),
        Case("SHOW ALL", .replica, "show"),
        Case("SELECT 'INSERT INTO x VALUES (1)'", .replica, "select"),
        Case("SELECT 'DELETE FROM t; DROP TABLE t' AS s -- UPDATE t SET a = 1", .replica, "select"),
        Case("SELECT $$ nextval('s') $$, 'pg_advisory_lock(1)'", .replica, "select"),
        Case("SELECT \"update\" FROM \"insert\"", .replica, "select"),
        Case("SELECT nextval FROM seqs", .replica, "select"),
        Case("SELECT count(*), sum(a), avg(a), min(a), max(a) FROM t", .replica, "select"),
        Case("SELECT lower(name), upper(name), length(name), coalesce(a, b), abs(-1) FROM t", .replica, "select"),
        Case("SELECT now(), current_timestamp, pg_catalog.now(), date_trunc('day', now())", .replica, "select"),
        Case("SELECT extract(year FROM now()), substring('abc' FROM 2), trim(both FROM ' a ')", .replica, "select"),
        Case("SELECT my_reader(1) FROM t", .replica, "select"),
        Case("SELECT * FROM generate_series(1, 10) g", .replica, "select"),
        Case("SELECT current_setting('work_mem'), version()", .replica, "select"),
        Case("SELECT date(created_at), int8(n) FROM t", .replica, "select"),
        Case("EXPLAIN ANALYSE UPDATE t SET a = 1", .primary, "write statement"),
        Case("SELECT * FROM t WHERE a = ANY($1) AND b IS NOT NULL", .replica, "select"),
        Case("SELECT 1; SELECT 2; SHOW work_mem", .replica, "select"),
        Case("", .replica, "empty"),
        Case("-- only a comment", .replica, "empty"),

        // MARK: EXPLAIN
        Case("EXPLAIN SELECT * FROM t", .replica, "explain"),
        Case("EXPLAIN INSERT INTO t VALUES (1)", .replica, "explain"),
        Case("EXPLAIN (FORMAT JSON) UPDATE t SET a = 1", .replica, "explain"),
        Case("EXPLAIN ANALYZE SELECT * FROM t", .replica, "select"),
        Case("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", .replica, "select"),
        Case("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", .primary, "write statement"),
        Case("EXPLAIN (ANALYZE true) DELETE FROM t", .primary, "write statement"),
        Case("EXPLAIN (ANALYZE false) DELETE FROM t", .replica, "explain"),
        Case("EXPLAIN (ANALYZE off) DELETE FROM t", .replica, "explain"),
        Case("EXPLAIN ANALYZE SELECT nextval('s')", .primary, "write function nextval"),
        Case("EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", .primary, "data-modifying CTE"),

        // MARK: COPY
        Case("COPY t TO STDOUT", .replica, "copy to"),
        Case("COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)", .replica, "copy to"),
        Case("COPY (SELECT * FROM t WHERE a > 1) TO STDOUT", .replica, "copy to"),
        Case("COPY (SELECT nextval('s')) TO STDOUT", .primary, "write function nextval"),
        Case("COPY (INSERT INTO t VALUES (1) RETURNING *) TO STDOUT", .primary, "write statement"),
        Case("COPY t FROM STDIN", .primary, "copy from"),
        Case("COPY t FROM '/tmp/data.csv' WITH (FORMAT csv)", .primary, "copy from"),
        Case("COPY t TO '/tmp/out.csv'", .primary, "copy to file"),

        // MARK: Writes
        Case("INSERT INTO t (a) VALUES (1)", .primary, "write statement"),
        Case("INSERT INTO t SELECT * FROM u", .primary, "write statement"),
        Case("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a", .primary, "write statement"),
        Case("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING id", .primary, "write statement"),
        Case("UPDATE t SET a = a + 1 WHERE id = 3", .primary, "write statement"),
        Case("UPDATE t SET a = u.a FROM u WHERE t.id = u.id RETURNING t.*", .primary, "write statement"),
        Case("DELETE FROM t WHERE id = 1", .primary, "write statement"),
        Case("DELETE FROM t USING u WHERE t.id = u.id", .primary, "write statement"),
        Case("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT VALUES (u.id, u.a)", .primary, "write statement"),
        Case("CREATE TABLE x (id int primary key)", .primary, "utility statement"),
        Case("CREATE TEMP TABLE tmp (a int)", .primary),
        Case("CREATE TABLE x AS SELECT * FROM t", .primary),
        Case("CREATE INDEX CONCURRENTLY i ON t (a)", .primary),
        Case("CREATE VIEW v AS SELECT * FROM t", .primary),
        Case("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", .primary),
        Case("ALTER TABLE t ADD COLUMN b text", .primary),
        Case("DROP TABLE IF EXISTS t CASCADE", .primary),
        Case("TRUNCATE t", .primary),
        Case("VACUUM ANALYZE t", .primary),
        Case("VACUUM", .primary),
        Case("ANALYZE t", .primary),
        Case("GRANT SELECT ON t TO bob", .primary),
        Case("REVOKE ALL ON t FROM bob", .primary),
        Case("CALL my_proc(1)", .primary),
        Case("DO $$ BEGIN PERFORM 1; END $$", .primary),
        Case("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", .primary),
        Case("REFRESH MATERIALIZED VIEW mv", .primary),
        Case("CLUSTER t USING i", .primary),
        Case("REINDEX TABLE t", .primary),
        Case("COMMENT ON TABLE t IS 'x'", .primary),
        Case("PREPARE p AS SELECT 1", .primary),
        Case("EXECUTE p(1)", .primary, "execute"),
        Case("DEALLOCATE p", .primary),
        Case("DEALLOCATE ALL", .primary),
        Case("LISTEN chan", .primary),
        Case("NOTIFY chan, 'hi'", .primary),
        Case("UNLISTEN *", .primary),
        Case("SET search_path TO app", .primary, "set"),
        Case("SET LOCAL statement_timeout = 5", .primary, "set"),
        Case("RESET ALL", .primary),
        Case("DISCARD ALL", .primary),
        Case("DECLARE c CURSOR FOR SELECT * FROM t", .primary),
        Case("FETCH 10 FROM c", .primary),
        Case("CHECKPOINT", .primary),

        // MARK: Data-modifying CTEs, locking clauses, SELECT INTO
        Case("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", .primary, "data-modifying CTE"),
        Case("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM x", .primary, "data-modifying CTE"),
        Case("WITH x AS (DELETE FROM t RETURNING id) SELECT 1", .primary, "data-modifying CTE"),
        Case("WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING *) SELECT * FROM c) SELECT * FROM a, b", .primary, "data-modifying CTE"),
        Case("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s", .primary, "data-modifying CTE"),
        Case("SELECT * FROM t FOR UPDATE", .primary, "locking clause"),
        Case("SELECT * FROM t FOR NO KEY UPDATE OF t NOWAIT", .primary, "locking clause"),
        Case("SELECT * FROM t FOR SHARE SKIP LOCKED", .primary, "locking clause"),
        Case("SELECT * FROM t FOR KEY SHARE", .primary, "locking clause"),
        Case("SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", .primary, "locking clause"),
        Case("SELECT a INTO b FROM t", .primary, "select into"),
        Case("SELECT * INTO TEMP tmp FROM t", .primary, "select into"),

        // MARK: Write functions, anywhere
        Case("SELECT nextval('s')", .primary, "write function nextval"),
        Case("SELECT setval('s', 10)", .primary, "write function setval"),
        Case("SELECT currval('s')", .primary, "write function currval"),
        Case("SELECT lastval()", .primary, "write function lastval"),
        Case("SELECT pg_catalog.nextval('s')", .primary, "write function pg_catalog.nextval"),
        Case("SELECT NEXTVAL('s')", .primary, "write function nextval"),
        Case("SELECT * FROM t WHERE id = nextval('s')", .primary, "write function nextval"),
        Case("SELECT * FROM t WHERE a > (SELECT max(b) FROM u WHERE c = currval('s'))", .primary, "write function currval"),
        Case("SELECT * FROM nextval('s')", .primary, "write function nextval"),
        Case("SELECT * FROM t, LATERAL (SELECT setval('s', t.a)) x", .primary, "write function setval"),
        Case("WITH x AS (SELECT nextval('s')) SELECT * FROM x", .primary, "write function nextval"),
        Case("SELECT coalesce(a, nextval('s')) FROM t", .primary, "write function nextval"),
        Case("SELECT pg_advisory_lock(1)", .primary, "write function pg_advisory_lock"),
        Case("SELECT pg_advisory_lock_shared(1)", .primary, "write function pg_advisory_lock_shared"),
        Case("SELECT pg_try_advisory_lock(1, 2)", .primary, "write function pg_try_advisory_lock"),
        Case("SELECT pg_advisory_xact_lock(1)", .primary, "write function pg_advisory_xact_lock"),
        Case("SELECT pg_try_advisory_xact_lock_shared(1)", .primary, "write function pg_try_advisory_xact_lock_shared"),
        Case("SELECT pg_advisory_unlock(1)", .primary, "write function pg_advisory_unlock"),
        Case("SELECT pg_advisory_unlock_all()", .primary, "write function pg_advisory_unlock_all"),
        Case("SELECT * FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1", .primary, "write function pg_try_advisory_lock"),
        Case("SELECT pg_notify('chan', 'payload')", .primary, "write function pg_notify"),
        Case("SELECT set_config('app.user', '1', false)", .primary, "write function set_config"),
        Case("SELECT txid_current()", .primary, "write function txid_current"),
        Case("SELECT txid_current_if_assigned()", .primary, "write function txid_current_if_assigned"),
        Case("SELECT pg_current_xact_id()", .primary, "write function pg_current_xact_id"),
        Case("SELECT pg_current_xact_id_if_assigned()", .primary, "write function pg_current_xact_id_if_assigned"),
        Case("SELECT pg_current_wal_lsn()", .primary, "write function pg_current_wal_lsn"),

        // MARK: Catalog: volatile, unknown, stable
        Case("SELECT my_writer(1)", .primary, "volatile function my_writer"),
        Case("SELECT * FROM t WHERE a = my_writer(b)", .primary, "volatile function my_writer"),
        Case("SELECT mystery(1)", .primary, "unknown function mystery"),
        Case("SELECT * FROM app.report()", .primary, "unknown function app.report"),
        Case("SELECT \"Lower\"('A')", .primary, "unknown function Lower"),
        Case("SELECT random()", .primary, "volatile function random"), // volatile in pg_proc, though it writes nothing
        Case("SELECT clock_timestamp()", .primary, "volatile function clock_timestamp"),
        Case("SELECT mystery(1), nextval('s')", .primary, "write function nextval"),

        // MARK: Parse errors
        Case("SELEC 1", .primary, "parse error"),
        Case("SELECT * FROM", .primary, "parse error"),
        Case("SELECT 1; INSERT INTO", .primary, "parse error"),

        // MARK: Several statements
        Case("SELECT 1; INSERT INTO t VALUES (1)", .primary, "multi-statement with write"),
        Case("UPDATE t SET a = 1; SELECT * FROM t", .primary, "multi-statement with write"),
        Case("SELECT 1; SELECT nextval('s')", .primary, "multi-statement with write"),
        Case("SHOW x; SELECT 1; VALUES (2)", .replica, "show"),
        Case("BEGIN; INSERT INTO t VALUES (1); COMMIT", .primary, "multi-statement with write", .commit),
        Case("BEGIN READ ONLY; SELECT 1", .replica, "transaction control", .begin(readOnly: true)),

        // MARK: Transaction control
        Case("BEGIN", .primary, "transaction control", .begin(readOnly: false)),
        Case("BEGIN READ WRITE", .primary, "transaction control", .begin(readOnly: false)),
        Case("BEGIN ISOLATION LEVEL REPEATABLE READ", .primary, "transaction control", .begin(readOnly: false)),
        Case("BEGIN READ ONLY", .replica, "transaction control", .begin(readOnly: true)),
        Case("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", .replica, "transaction control", .begin(readOnly: true)),
        Case("START TRANSACTION READ ONLY", .replica, "transaction control", .begin(readOnly: true)),
        Case("START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY", .primary, "serializable transaction", .begin(readOnly: true)),
        Case("START TRANSACTION", .primary, "transaction control", .begin(readOnly: false)),
        Case("COMMIT", .primary, "transaction control", .commit),
        Case("END", .primary, "transaction control", .commit),
        Case("COMMIT AND CHAIN", .primary, "transaction control", .commit),
        Case("ROLLBACK", .primary, "transaction control", .rollback),
        Case("ABORT", .primary, "transaction control", .rollback),
        Case("ROLLBACK TO SAVEPOINT a", .primary, "transaction control"),
        Case("SAVEPOINT a", .primary, "transaction control"),
        Case("RELEASE SAVEPOINT a", .primary, "transaction control"),
        Case("PREPARE TRANSACTION 'gx'", .primary, "transaction control", .commit),
        Case("COMMIT PREPARED 'gx'", .primary, "transaction control"),
        Case("SET TRANSACTION READ ONLY", .primary, "transaction control", .setTransactionReadOnly),
        Case("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", .primary, "set"),
        Case("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", .primary, "set"),

        // MARK: Hints
        Case("/* switchyard:primary */ SELECT * FROM t", .primary, "hint primary"),
        Case("SELECT * FROM t -- switchyard:primary", .primary, "hint primary"),
        Case("/* switchyard:replica */ SELECT * FROM t", .replica, "select"),
        Case("/* switchyard:replica */ SELECT my_writer(1)", .replica, "hint replica"),
        Case("SELECT mystery(1) -- switchyard:replica", .replica, "hint replica"),
        Case("/* switchyard:replica */ SELECT random()", .replica, "hint replica"),
        Case("/* switchyard:replica */ INSERT INTO t VALUES (1)", .primary, "write statement"),
        Case("/* switchyard:replica */ SELECT nextval('s')", .primary, "write function nextval"),
        Case("/* switchyard:replica */ SELECT * FROM t FOR UPDATE", .primary, "locking clause"),
        Case("/* switchyard:replica */ WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", .primary, "data-modifying CTE"),
        Case("/* switchyard:replica */ SELEC 1", .primary, "parse error"),
        Case("/* switchyard:replica */ BEGIN", .primary, "transaction control", .begin(readOnly: false)),
        Case("/* switchyard:primary */ BEGIN READ ONLY", .primary, "hint primary", .begin(readOnly: true)),
        Case("SELECT '/* switchyard:primary */'", .replica, "select"),
    ]

    func testTable() {
        XCTAssertGreaterThanOrEqual(Self.table.count, 110)
        let c = classifier()
        for item in Self.table {
            let got = c.classify(item.sql)
            XCTAssertEqual(got.route, item.route, "\(item.sql): \(got.reason)")
            if let reason = item.reason { XCTAssertEqual(got.reason, reason, item.sql) }
            XCTAssertEqual(got.transaction, item.transaction, item.sql)
        }
    }

    /// The same table through a warm cache (second pass) and through a cache that holds nothing gives the same answers.
    func testTableIsStableAcrossCacheStates() {
        let warm = classifier()
        let uncached = Classifier(parser: PgQueryParser(), catalog: Self.catalog, cacheCapacity: 0)
        for item in Self.table { _ = warm.classify(item.sql) }
        for item in Self.table {
            XCTAssertEqual(warm.classify(item.sql), uncached.classify(item.sql), item.sql)
        }
        XCTAssertGreaterThan(warm.cacheHits, 0)
        XCTAssertEqual(uncached.cacheHits, 0)
    }

    func testBytesClassifyAsTheString() {
        // The relay classifies Query payloads in place: same verdict, hint, fingerprint and effects answer.
        let extra = ["SELECT 1 /* switchyard:primary */", "select x::int -- SwitchYard: replica", "SELECT '::switchyard:primary'",
                     "SELECT 1 /* switchyard :primary */", "/* switchyard:replica */ SELECT nextval('s')", "SET search_path = a",
                     "SELECT set_config('a', 'b', false)", "SELECT 'x''y' || $1, '::' -- switchyard:replica"]
        for cacheCapacity in [10_000, 0] {
            let strings = Classifier(parser: PgQueryParser(), catalog: Self.catalog, cacheCapacity: cacheCapacity)
            let bytes = Classifier(parser: PgQueryParser(), catalog: Self.catalog, cacheCapacity: cacheCapacity)
            for sql in Self.table.map(\.sql) + extra {
                var text = sql
                let fromBytes = text.withUTF8 { bytes.classify(utf8: UnsafeRawBufferPointer($0)) }
                XCTAssertEqual(fromBytes, strings.classify(sql), sql)
                XCTAssertEqual(bytes.lastHint, RouteHint.find(in: sql), sql)
                // Cached: exact per shape (the raw scan for texts with strings); uncached: the raw scan ("may").
                let exact = SessionAnalyzer.mayHaveEffects(sql) && !SessionAnalyzer.effects(of: sql).isEmpty
                let raw = SessionAnalyzer.mayHaveEffects(sql)
                XCTAssertEqual(bytes.lastMayHaveEffects, cacheCapacity == 0 || sql.contains("'") ? raw : exact, sql)
                XCTAssertEqual(bytes.lastFingerprint, cacheCapacity == 0 ? nil : Fingerprint.of(sql), sql)
            }
        }
    }

    // MARK: Cache

    func testOtherLiteralsHitTheCache() {
        let c = classifier()
        XCTAssertEqual(c.classify("SELECT * FROM t WHERE id = 1 AND name IN ('a', 'b')").route, .replica)
        XCTAssertEqual(c.parseCount, 1)
        XCTAssertEqual(c.cacheHits, 0)
        XCTAssertEqual(c.classify("select *  from t where id = 99 and name in ('x') -- other").route, .replica)
        XCTAssertEqual(c.parseCount, 1)
        XCTAssertEqual(c.cacheHits, 1)
        XCTAssertEqual(c.classify("SELECT * FROM t WHERE id = nextval('s')").route, .primary)
        XCTAssertEqual(c.parseCount, 2)
        XCTAssertEqual(c.classify("SELECT * FROM t WHERE id = nextval('other_seq')").route, .primary)
        XCTAssertEqual(c.parseCount, 2)
        XCTAssertEqual(c.cacheHits, 2)
        // The fingerprint it keyed on is handed out, so stats need not lex the text again.
        XCTAssertEqual(c.lastFingerprint, Fingerprint.of("SELECT * FROM t WHERE id = nextval('x')"))
    }

    func testHintsApplyAfterTheCache() {
        let c = classifier()
        XCTAssertEqual(c.classify("SELECT random() FROM t WHERE a = 1").route, .primary)
        XCTAssertEqual(c.classify("/* switchyard:replica */ SELECT random() FROM t WHERE a = 2").route, .replica)
        XCTAssertEqual(c.classify("SELECT random() FROM t WHERE a = 3").route, .primary)
        XCTAssertEqual(c.classify("SELECT random() FROM t WHERE a = 4 /* switchyard:primary */").route, .primary)
        XCTAssertEqual(c.classify("SELECT a FROM t WHERE a = 5").route, .replica)
        XCTAssertEqual(c.classify("SELECT a FROM t WHERE a = 6 /* switchyard:primary */").route, .primary)
        XCTAssertEqual(c.parseCount, 2)
        XCTAssertEqual(c.cacheHits, 4)
    }

    func testWhatMayChangeData() {
        // Read-your-writes learns a WAL position only after a statement that may change data.
        let c = classifier()
        let quiet = ["SELECT 1", "SHOW work_mem", "BEGIN", "BEGIN ISOLATION LEVEL SERIALIZABLE", "START TRANSACTION READ ONLY",
                     "BEGIN READ ONLY ISOLATION LEVEL SERIALIZABLE", "COMMIT", "END", "ROLLBACK", "SAVEPOINT s", "RELEASE s",
                     "ROLLBACK TO s", "SET lock_timeout = 5", "RESET lock_timeout", "SET LOCAL work_mem = '1MB'",
                     "SET TRANSACTION READ ONLY", "PREPARE TRANSACTION 'x'", "BEGIN; SELECT 1", "SELECT 1; COMMIT",
                     "SELECT a FROM t WHERE a = 1 /* switchyard:primary */"]
        for sql in quiet { XCTAssertFalse(c.classify(sql).writes, sql) }
        let writing = ["INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "SELECT my_writer()",
                       "SELECT random()", "/* switchyard:replica */ SELECT random()", "SELECT * FROM t FOR UPDATE",
                       "CREATE TABLE x (a int)", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "COPY t FROM STDIN",
                       "BEGIN; INSERT INTO t VALUES (1)", "SELECT 1; DELETE FROM t", "EXECUTE p", "not sql at all",
                       "SELECT nextval('s')", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"]
        for sql in writing { XCTAssertTrue(c.classify(sql).writes, sql) }
    }

    func testInvalidateDropsTheCache() {
        let c = classifier()
        _ = c.classify("SELECT 1")
        _ = c.classify("SELECT 2")
        XCTAssertEqual(c.parseCount, 1)
        XCTAssertEqual(c.cachedCount, 1)
        c.invalidate()
        XCTAssertEqual(c.cachedCount, 0)
        _ = c.classify("SELECT 3")
        XCTAssertEqual(c.parseCount, 2)
    }

    func testLiteralDependentAndFailedTextsAreNotCached() {
        let c = classifier()
        XCTAssertEqual(c.classify("EXPLAIN (ANALYZE 0) DELETE FROM t").route, .replica)
        XCTAssertEqual(c.classify("EXPLAIN (ANALYZE 1) DELETE FROM t").route, .primary)
        XCTAssertEqual(c.parseCount, 2)
        XCTAssertEqual(c.classify("SELECT 'a").reason, "parse error")
        XCTAssertEqual(c.classify("SELECT 'b'").route, .replica)
        XCTAssertEqual(c.parseCount, 4)
    }

    func testCapacityBoundsTheCache() {
        let c = Classifier(parser: PgQueryParser(), catalog: Self.catalog, cacheCapacity: 10)
        for i in 0..<50 { _ = c.classify("SELECT c\(i) FROM t") }
        XCTAssertLessThanOrEqual(c.cachedCount, 10)
        XCTAssertEqual(c.parseCount, 50)
        _ = c.classify("SELECT c49 FROM t")
        XCTAssertEqual(c.parseCount, 50) // recent entries survive
    }

    func testCatalogOverridesAndQualifiedNames() {
        let catalog = BuiltinFunctionCatalog(extra: ["app.report": .stable, "random": .stable])
        let c = Classifier(parser: PgQueryParser(), catalog: catalog)
        XCTAssertEqual(c.classify("SELECT * FROM app.report()").route, .replica)
        XCTAssertEqual(c.classify("SELECT random()").route, .replica)
        XCTAssertEqual(c.classify("SELECT * FROM report()").reason, "unknown function report")
        XCTAssertEqual(c.classify("SELECT other.lower('x')").reason, "unknown function other.lower")
        XCTAssertEqual(c.classify("SELECT pg_catalog.lower('x')").route, .replica)
    }

    /// Text the parser rejects is not cached, but it may share a fingerprint with a valid read that is (an
    /// unterminated literal or comment folds like a terminated one): it then goes to a replica, which reports
    /// the same syntax error. Never a write, since only the valid twin's decision is reused.
    func testUnterminatedTextFollowsItsCachedTwin() {
        let c = classifier()
        XCTAssertEqual(c.classify("SELECT 'unterminated").reason, "parse error")
        XCTAssertEqual(c.classify("SELECT 1 /* unterminated").reason, "parse error")
        XCTAssertEqual(c.classify("SELECT 'ok'").route, .replica)
        XCTAssertEqual(c.classify("SELECT 'unterminated").route, .replica)
        XCTAssertEqual(c.classify("INSERT INTO t VALUES ('x')").route, .primary)
        XCTAssertEqual(c.classify("INSERT INTO t VALUES ('unterminated").route, .primary)
    }

    /// Deep trees are walked; trees nested past ParseTree's depth limit go to the primary, without trapping.
    func testDeepNesting() {
        let c = classifier()
        func nested(_ n: Int, _ inner: String) -> String {
            "SELECT * FROM " + String(repeating: "(SELECT * FROM ", count: n) + inner + String(repeating: ") s", count: n)
        }
        XCTAssertEqual(c.classify(nested(150, "t")).route, .replica)
        XCTAssertEqual(c.classify(nested(150, "nextval('s')")).reason, "write function nextval")
        XCTAssertEqual(c.classify(nested(400, "t")).route, .primary)
        XCTAssertEqual(c.classify("SELECT " + String(repeating: "(", count: 5_000) + "1" + String(repeating: ")", count: 5_000)).route, .replica)
    }

    func testParserErrorCarriesMessage() {
        guard case let .failure(error) = PgQueryParser().parseJSON("SELEC 1") else { return XCTFail("parsed") }
        XCTAssertTrue(error.message.contains("syntax error"), error.message)
        XCTAssertEqual(error.cursorPosition, 1)
    }

    /// Cost per call, printed only (no timing assertions).
    func testReportCost() {
        let sql = "SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 42 AND o.state IN ('a', 'b')"
        let c = classifier()
        let n = 2_000
        let texts = (0..<n).map { sql.replacingOccurrences(of: "42", with: String($0)) }
        _ = c.classify(sql)
        var start = DispatchTime.now().uptimeNanoseconds
        for text in texts { _ = c.classify(text) }
        let cached = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n) / 1000
        let uncached = Classifier(parser: PgQueryParser(), catalog: Self.catalog, cacheCapacity: 0)
        start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n { _ = uncached.classify(sql) }
        let parsed = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n) / 1000
        start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n { _ = Fingerprint.of(sql) }
        let fingerprint = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n) / 1000
        print("classify cost: cached \(cached) µs, uncached \(parsed) µs, fingerprint alone \(fingerprint) µs")
    }
}
