// SessionAnalyzer as a table of SQL -> effects (every SessionEffect and the negative cases), the byte pre-check,
// transaction control, and SessionState: apply transitions, pins, and the SET/RESET sync SQL.
import XCTest
import ProxyCore

final class SessionEffectsTests: XCTestCase {
    typealias E = SessionEffect

    /// (sql, expected effects). Every case with effects must also pass mayHaveEffects.
    let table: [(String, [E])] = [
        // SET
        ("SET statement_timeout = 5000", [.set(name: "statement_timeout", value: "5000")]),
        ("set TimeZone TO 'UTC'", [.set(name: "timezone", value: "'UTC'")]),
        ("SET SESSION search_path TO public, \"My Schema\"", [.set(name: "search_path", value: "public, \"My Schema\"")]),
        ("SET lock_timeout = '5s' ; ", [.set(name: "lock_timeout", value: "'5s'")]),
        ("SET myapp.user_id = 'x'", [.set(name: "myapp.user_id", value: "'x'")]),
        ("SET \"MyApp\".Key TO 1", [.set(name: "MyApp.key", value: "1")]),
        ("SET work_mem TO DEFAULT", [.reset(name: "work_mem")]),
        ("SET work_mem = default", [.reset(name: "work_mem")]),
        ("SET TIME ZONE 'Europe/Paris'", [.set(name: "timezone", value: "'Europe/Paris'")]),
        ("SET TIME ZONE -7", [.set(name: "timezone", value: "-7")]),
        ("SET TIME ZONE LOCAL", [.reset(name: "timezone")]),
        ("SET TIME ZONE DEFAULT", [.reset(name: "timezone")]),
        ("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", [.unknownSessionChange]),
        ("SET SCHEMA 'app'", [.set(name: "search_path", value: "'app'")]),
        ("SET NAMES 'UTF8'", [.set(name: "client_encoding", value: "'UTF8'")]),
        ("SET SESSION AUTHORIZATION 'bob'", [.set(name: "session_authorization", value: "'bob'")]),
        ("SET SESSION AUTHORIZATION DEFAULT", [.reset(name: "session_authorization")]),
        ("SET ROLE admin", [.set(name: "role", value: "admin")]),
        ("SET role = 'admin'", [.set(name: "role", value: "'admin'")]),
        ("SET XML OPTION DOCUMENT", [.set(name: "xmloption", value: "DOCUMENT")]),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
         [.set(name: "default_transaction_isolation", value: "'repeatable read'"),
          .set(name: "default_transaction_read_only", value: "on")]),
        // RESET
        ("RESET search_path", [.reset(name: "search_path")]),
        ("RESET myapp.user_id", [.reset(name: "myapp.user_id")]),
        ("RESET TIME ZONE", [.reset(name: "timezone")]),
        ("RESET SESSION AUTHORIZATION", [.reset(name: "session_authorization")]),
        ("RESET ROLE", [.reset(name: "role")]),
        ("reset all", [.resetAll]),
        // DISCARD / DEALLOCATE / PREPARE
        ("DISCARD ALL", [.discardAll]),
        ("DISCARD TEMP", [.discardTemp]),
        ("DISCARD TEMPORARY", [.discardTemp]),
        ("DEALLOCATE p1", [.deallocate("p1")]),
        ("DEALLOCATE PREPARE \"P2\"", [.deallocate("P2")]),
        ("DEALLOCATE ALL", [.deallocate(nil)]),
        ("DEALLOCATE PREPARE ALL", [.deallocate(nil)]),
        ("PREPARE q (int, text) AS SELECT $1, $2", [.sqlPrepare("q")]),
        ("PREPARE q AS SELECT pg_advisory_lock(1)", [.sqlPrepare("q")]),
        // LISTEN
        ("LISTEN jobs", [.listen("jobs")]),
        ("LISTEN \"Jobs\"", [.listen("Jobs")]),
        ("UNLISTEN jobs", [.unlisten("jobs")]),
        ("UNLISTEN *", [.unlisten(nil)]),
        // Advisory locks
        ("SELECT pg_advisory_lock(42)", [.advisoryLock]),
        ("SELECT pg_try_advisory_lock(1, 2), pg_advisory_lock_shared(3)", [.advisoryLock, .advisoryLock]),
        ("select PG_TRY_ADVISORY_LOCK_SHARED($1)", [.advisoryLock]),
        ("SELECT pg_catalog.pg_advisory_unlock(42)", [.advisoryUnlock]),
        ("SELECT pg_advisory_unlock_shared(42)", [.advisoryUnlock]),
        ("SELECT pg_advisory_unlock_all()", [.advisoryUnlockAll]),
        ("DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$", [.advisoryLock]),
        // Temp objects
        ("CREATE TEMP TABLE t (a int)", [.createTemp]),
        ("CREATE TEMPORARY VIEW v AS SELECT 1", [.createTemp]),
        ("CREATE GLOBAL TEMPORARY TABLE t (a int)", [.createTemp]),
        ("create local temp sequence s", [.createTemp]),
        ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", [.createTemp]),
        ("CREATE TABLE pg_temp.t (a int)", [.createTemp]),
        ("SELECT * INTO TEMP t FROM s", [.createTemp]),
        ("SELECT a INTO TEMPORARY TABLE t FROM s", [.createTemp]),
        // Cursors
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", [.declareWithHold("c")]),
        ("DECLARE c BINARY INSENSITIVE NO SCROLL CURSOR WITH HOLD FOR SELECT 1", [.declareWithHold("c")]),
        ("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", []),
        ("DECLARE c CURSOR FOR SELECT 'with hold'", []),
        ("CLOSE c", [.closeCursor("c")]),
        ("CLOSE ALL", [.closeCursor(nil)]),
        // set_config
        ("SELECT set_config('search_path', 'x', false)", [.unknownSessionChange]),
        ("SELECT set_config('a.b', $1, $2)", [.unknownSessionChange]),
        ("SELECT set_config('a.b', 'x', true)", []),
        ("SELECT set_config('a.b', 'x', 'on'::boolean)", []),
        // Negative cases
        ("SET LOCAL statement_timeout = 1", []),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", []),
        ("SET CONSTRAINTS ALL DEFERRED", []),
        ("SET transaction_isolation = 'serializable'", []),
        ("RESET TRANSACTION ISOLATION LEVEL", []),
        ("SELECT 'SET x = 1'", []),
        ("-- LISTEN x", []),
        ("/* SET a = 1; */ SELECT 1", []),
        ("select pg_advisory_xact_lock(1)", []),
        ("select pg_try_advisory_xact_lock_shared(1)", []),
        ("UPDATE t SET a = 1 WHERE b = 2", []),
        ("ALTER ROLE bob SET search_path = x", []),
        ("CREATE FUNCTION f() RETURNS void LANGUAGE sql SET search_path = x AS $$ SET work_mem = 1; SELECT pg_advisory_lock(1) $$",
         []),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_lock(1); SELECT 1; END", []),
        ("CREATE TABLE temp (a int)", []),
        ("INSERT INTO temp VALUES (1)", []),
        ("DISCARD PLANS", []),
        ("PREPARE TRANSACTION 'tx1'", []),
        ("SELECT * FROM t FOR UPDATE", []),
        // Multi-statement and DO blocks
        ("SET a=1; LISTEN c; SELECT 1", [.set(name: "a", value: "1"), .listen("c")]),
        ("BEGIN; SET search_path = x; SELECT pg_advisory_lock(1); COMMIT;", [.set(name: "search_path", value: "x"), .advisoryLock]),
        ("DO $$ BEGIN SET search_path = x; END $$", [.unknownSessionChange]),
        ("DO LANGUAGE plpgsql 'BEGIN IF true THEN LISTEN c; END IF; PERFORM pg_advisory_unlock(1); END'", [.listen("c")]),
        ("DO $$ BEGIN EXECUTE 'SET ' || 'work_mem = 1'; END $$", [.unknownSessionChange]),
        ("DO $$ BEGIN CREATE TEMP TABLE t (a int); END $$", [.createTemp]),
        ("DO $$ BEGIN UPDATE t SET a = 1; END $$", []),
        ("DO $$ plpy.execute('LISTEN x') $$ LANGUAGE plpython3u", [.unknownSessionChange]),
    ]

    func testStartsWithSetOrReset() {
        func check(_ sql: String) -> Bool {
            var text = sql
            return text.withUTF8 { SessionAnalyzer.startsWithSetOrReset(UnsafeRawBufferPointer($0)) }
        }
        XCTAssertTrue(check("SET switchyard.statement_timeout = '2s'"))
        XCTAssertTrue(check("  /* hint */ reset switchyard.route"))
        XCTAssertTrue(check("-- c\nSet x = 1"))
        XCTAssertFalse(check("SELECT set_config('a', 'b', false)"))
        XCTAssertFalse(check("settle"))
        XCTAssertFalse(check("UPDATE t SET a = 1"))
        // Decided from the first letter when there is nothing to skip.
        XCTAssertTrue(check("RESET ALL"))
        XCTAssertTrue(check("reset"))
        XCTAssertTrue(check("set;"))
        XCTAssertFalse(check("set_config"))
        XCTAssertFalse(check("RESETS"))
        XCTAssertFalse(check("rollback"))
        XCTAssertFalse(check("s"))
    }

    func testEffectsTable() {
        for (sql, expected) in table {
            XCTAssertEqual(SessionAnalyzer.effects(of: sql), expected, sql)
        }
    }

    func testMayHaveEffectsHasNoFalseNegatives() {
        for (sql, expected) in table where !expected.isEmpty {
            XCTAssertTrue(SessionAnalyzer.mayHaveEffects(sql), sql)
            let bytes = Array(sql.utf8)
            XCTAssertTrue(bytes.withUnsafeBytes { SessionAnalyzer.mayHaveEffects($0) }, sql)
        }
    }

    func testMayHaveEffectsFalseForPlainQueries() {
        for sql in ["SELECT * FROM t WHERE id = $1", "INSERT INTO t VALUES (1)", "select a, b from orders order by 1 limit 10 offset 5",
                    "DELETE FROM assets WHERE dataset_id = $1", "", "BEGIN", "COMMIT"] {
            XCTAssertFalse(SessionAnalyzer.mayHaveEffects(sql), sql)
        }
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("SELECT \"x\"SET"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("select U&\"\\0073et_config\"('a', 'b', false)"))
        // A keyword inside a longer word does not count (advisory and temp count anywhere: pg_advisory_lock, pg_temp).
        XCTAssertFalse(SessionAnalyzer.mayHaveEffects("SELECT abalance FROM pgbench_accounts WHERE aid = 7"))
        XCTAssertFalse(SessionAnalyzer.mayHaveEffects("SELECT offset_reset, unsettled FROM t"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("SELECT pg_try_advisory_xact_lock(1)"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("SELECT * FROM pg_temp.t"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("create temporary table x (a int)"))
    }

    func testTransactionControl() {
        let cases: [(String, TransactionControl?)] = [
            ("BEGIN", .begin(readOnly: false)),
            ("begin work", .begin(readOnly: false)),
            ("BEGIN READ ONLY", .begin(readOnly: true)),
            ("BEGIN ISOLATION LEVEL READ COMMITTED", .begin(readOnly: false)),
            ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", .begin(readOnly: true)),
            ("START TRANSACTION READ WRITE", .begin(readOnly: false)),
            ("COMMIT", .commit), ("END TRANSACTION", .commit), ("COMMIT AND CHAIN", .commit),
            ("ROLLBACK", .rollback), ("ABORT", .rollback), ("rollback work", .rollback),
            ("ROLLBACK TO SAVEPOINT s", nil), ("ROLLBACK TRANSACTION TO s", nil),
            ("COMMIT PREPARED 'x'", nil), ("ROLLBACK PREPARED 'x'", nil), ("PREPARE TRANSACTION 'x'", .commit),
            ("SET TRANSACTION READ ONLY", .setTransactionReadOnly),
            ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", .setTransactionReadOnly),
            ("SET TRANSACTION READ WRITE", nil),
            ("SAVEPOINT s", nil), ("SELECT 1", nil), ("SET x = 1", nil),
        ]
        for (sql, expected) in cases {
            XCTAssertEqual(SessionAnalyzer.transactionControl(of: SQLLexer.tokens(sql)), expected, sql)
        }
        let statements = SQLLexer.statements("BEGIN; SELECT 1; COMMIT")
        XCTAssertEqual(statements.map(SessionAnalyzer.transactionControl), [.begin(readOnly: false), nil, .commit])
    }

    // MARK: SessionState

    func testApplyTransitionsAndPins() {
        var s = SessionState()
        XCTAssertFalse(s.isPinned)
        XCTAssertNil(s.pinReason)

        s.apply(.set(name: "search_path", value: "x"))
        s.apply(.set(name: "TimeZone", value: "'UTC'"))
        XCTAssertEqual(s.parameters, ["search_path": "x", "timezone": "'UTC'"])
        XCTAssertFalse(s.isPinned, "SET parameters follow the client, they do not pin")
        s.apply(.reset(name: "search_path"))
        XCTAssertEqual(s.parameters, ["timezone": "'UTC'"])

        s.apply(.listen("a"))
        XCTAssertEqual(s.pinReason, "listen")
        s.apply(.unlisten("a"))
        XCTAssertNil(s.pinReason)
        s.apply(.listen("a"))
        s.apply(.listen("b"))
        s.apply(.unlisten(nil))
        XCTAssertTrue(s.listening.isEmpty)

        s.apply(.advisoryLock)
        s.apply(.advisoryLock)
        XCTAssertEqual(s.pinReason, "advisory_lock")
        s.apply(.advisoryUnlock)
        XCTAssertTrue(s.isPinned)
        s.apply(.advisoryUnlock)
        s.apply(.advisoryUnlock)
        XCTAssertEqual(s.advisoryLocks, 0, "never below zero")
        s.apply(.advisoryLock)
        s.apply(.advisoryUnlockAll)
        XCTAssertFalse(s.isPinned)

        s.apply(.createTemp)
        XCTAssertEqual(s.pinReason, "temp_table")
        s.apply(.discardTemp)
        XCTAssertFalse(s.isPinned)

        s.apply(.declareWithHold("c"))
        XCTAssertEqual(s.pinReason, "hold_cursor")
        s.apply(.closeCursor("other"))
        XCTAssertTrue(s.isPinned)
        s.apply(.closeCursor(nil))
        XCTAssertFalse(s.isPinned)

        s.apply(.sqlPrepare("p"))
        s.apply(.sqlPrepare("q"))
        XCTAssertEqual(s.pinReason, "sql_prepare")
        s.apply(.deallocate("p"))
        XCTAssertTrue(s.isPinned)
        s.apply(.deallocate(nil))
        XCTAssertFalse(s.isPinned)

        s.apply(.unknownSessionChange)
        XCTAssertEqual(s.pinReason, "set_config")
        s.apply(.listen("x"))
        XCTAssertEqual(s.pinReason, "listen", "listen is reported first")

        s.apply(.set(name: "role", value: "admin"))
        s.apply(.resetAll)
        XCTAssertEqual(s.parameters, ["role": "admin"], "RESET ALL keeps role and session_authorization, as Postgres does")
        XCTAssertTrue(s.isPinned, "RESET ALL does not unpin")

        s.apply(.createTemp)
        s.apply(.advisoryLock)
        s.apply(.declareWithHold("c"))
        s.apply(.sqlPrepare("p"))
        s.apply(.discardAll)
        XCTAssertEqual(s, SessionState())
    }

    func testSyncSQL() {
        XCTAssertEqual(SessionState.syncSQL(from: [:], to: [:]), "")
        XCTAssertEqual(SessionState.syncSQL(from: ["a": "1"], to: ["a": "1"]), "")
        XCTAssertEqual(SessionState.syncSQL(from: [:], to: ["search_path": "public, \"My Schema\"", "timezone": "'UTC'"]),
                       "SET search_path TO public, \"My Schema\";SET timezone TO 'UTC';")
        XCTAssertEqual(SessionState.syncSQL(from: ["a": "1", "b": "2"], to: ["a": "3", "b": "2"]), "SET a TO 3;")
        XCTAssertEqual(SessionState.syncSQL(from: ["a": "1", "b": "2"], to: ["a": "x"]), "SET a TO x;RESET b;")
        XCTAssertEqual(SessionState.syncSQL(from: ["work_mem": "'4MB'"], to: [:]), "RESET work_mem;")
        XCTAssertEqual(SessionState.syncSQL(from: [:], to: ["myapp.user_id": "'7'", "My Var": "1"]),
                       "SET \"My Var\" TO 1;SET myapp.user_id TO '7';")
        XCTAssertEqual(SessionState.syncSQL(from: [:], to: ["role": "r", "session_authorization": "'u'", "work_mem": "1"]),
                       "SET work_mem TO 1;SET session_authorization TO 'u';SET role TO r;")
    }

    func testQuoteName() {
        XCTAssertEqual(SessionState.quoteName("search_path"), "search_path")
        XCTAssertEqual(SessionState.quoteName("myapp.user_id"), "myapp.user_id")
        XCTAssertEqual(SessionState.quoteName("MyApp.key"), "\"MyApp\".key")
        XCTAssertEqual(SessionState.quoteName("a\"b"), "\"a\"\"b\"")
        XCTAssertEqual(SessionState.quoteName("1x"), "\"1x\"")
    }

    /// The analyzer's effects, applied, give the SQL that moves the session to another server.
    func testEffectsFollowTheClient() {
        var s = SessionState()
        for e in SessionAnalyzer.effects(of: "SET search_path TO app, public; SET TIME ZONE 'UTC'; SET LOCAL work_mem = 1") {
            s.apply(e)
        }
        XCTAssertEqual(SessionState.syncSQL(from: ["timezone": "'UTC'"], to: s.parameters), "SET search_path TO app, public;")
    }
}

final class MayHaveEffectsUpdateTests: XCTestCase {
    /// An UPDATE's own SET clause is not a session effect; a SET statement after it, or set_config in it, is.
    func testUpdateSetClauseIsNotATrigger() {
        XCTAssertFalse(SessionAnalyzer.mayHaveEffects("UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 7"))
        XCTAssertFalse(SessionAnalyzer.mayHaveEffects("/* c */ update t set a = 1"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("UPDATE t SET a = 1; SET search_path = x"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("UPDATE t SET a = set_config('x.y', 'z', false)"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("UPDATE t SET a = pg_advisory_lock(1)"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("SET a = 1"))
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("SELECT 1; UPDATE t SET a = 1"), "not a single UPDATE: set still counts")
    }
}
