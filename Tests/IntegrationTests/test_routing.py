"""Read/write splitting in transaction mode: reads spread over healthy replicas by weight, every form
of write (and anything volatile) lands on the primary, transactions stay on one backend, routing
hints and the switchyard.route session preference, read-your-writes under replica lag, replicas
and the primary going away, and session-mode clients staying on the primary. The replicas are the
fixture replicas (replica_fast, replica_delayed), never the cluster's shared one, so tests may stop
them. `SELECT inet_server_port()` (a stable builtin, so a read) tells which backend answered."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time

import asyncpg
import psycopg
import pytest

from conftest import PASSWORDS, free_port

pytestmark = pytest.mark.proxy_only

RYW_ITERATIONS = int(os.environ.get("SWITCHYARD_RYW_ITERATIONS", "500"))
PORT = "SELECT inet_server_port()"
_names = itertools.count()


# ---- helpers ------------------------------------------------------------------------------


def routing_proxy(start_proxy_sections, replicas: dict, settle: float = 1.0, **settings):
    """A transaction-mode proxy with health probes every 200 ms and the given replicas
    ({"r1": (StandbyReplica or port, weight)}); waits `settle` seconds for the first probes."""
    cfg = dict(
        pool_mode="transaction", health_check_user="sy_scram", health_check_database="sydb",
        health_check_interval="200ms", query_wait_timeout="10s",
    )
    cfg.update(settings)
    sections = {}
    for name, (rep, weight) in replicas.items():
        port = rep if isinstance(rep, int) else rep.port
        sections[f"replica.{name}"] = {"host": "127.0.0.1", "port": port, "weight": weight}
    p = start_proxy_sections(sections=sections, **cfg)
    time.sleep(settle)
    p.assert_alive()
    return p


def uniq(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def port_of(conn: psycopg.Connection, sql: str = PORT, params=None) -> int:
    return conn.execute(sql, params).fetchone()[0]


def ports(conn: psycopg.Connection, n: int, sql: str = PORT) -> list[int]:
    return [port_of(conn, sql) for _ in range(n)]


def primary_lsn(cluster) -> str:
    """The primary's WAL insert position: the test cluster runs synchronous_commit = off, so a commit
    record can still be past pg_current_wal_lsn() (the write position) when COMMIT returns."""
    return cluster.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0]


def asyncpg_connect(p, **kw):
    return asyncpg.connect(
        host=p.host, port=p.port, user="sy_scram", password=PASSWORDS["sy_scram"], database="sydb",
        ssl=False, timeout=15, **kw
    )


def sqlstate_and_time(fn) -> tuple[str | None, str, float]:
    """Runs fn(); returns (sqlstate or None on success, message, seconds taken)."""
    t0 = time.monotonic()
    try:
        fn()
    except psycopg.Error as e:
        return e.sqlstate, str(e), time.monotonic() - t0
    return None, "", time.monotonic() - t0


@pytest.fixture
def replicas_up(replica_fast, replica_delayed):
    """Both fixture replicas running and streaming before and after the test (fault tests stop them)."""
    replica_fast.start()
    replica_delayed.start()
    yield replica_fast, replica_delayed
    replica_fast.start()
    replica_delayed.start()


# ---- 1. load balancing --------------------------------------------------------------------


def test_reads_spread_by_weight_over_two_replicas(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 2), "r2": (delayed, 1)})
    with p.connect() as c:
        seen = ports(c, 300)
    counts = {port: seen.count(port) for port in set(seen)}
    assert cluster.primary_port not in counts, f"the primary answered reads: {counts}"
    assert set(counts) == {fast.port, delayed.port}, f"expected both replicas, got {counts}"
    share = counts[fast.port] / len(seen)
    assert 0.55 <= share <= 0.8, f"weight 2:1 should give r1 about 2/3 of the reads, got {counts}"


# ---- 2. writes ----------------------------------------------------------------------------


def test_every_write_form_lands_on_the_primary(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)})
    prim = cluster.primary_port
    t, seq, newt, fn = uniq("w"), uniq("wseq"), uniq("wnew"), uniq("wfn")
    failures = []

    def expect_primary(c, sql, params=None):
        try:
            cur = c.execute(sql, params)
            row = cur.fetchone() if cur.description else None
        except psycopg.Error as e:
            failures.append(f"{sql!r}: {e.sqlstate} {e}")
            return
        if row is not None and row[-1] != prim:
            failures.append(f"{sql!r}: answered by port {row[-1]}, not the primary {prim}")

    with p.connect() as c:
        # DDL
        expect_primary(c, f"CREATE TABLE {t} (id int PRIMARY KEY, v int DEFAULT 0)")
        expect_primary(c, f"ALTER TABLE {t} ADD COLUMN note text")
        expect_primary(c, f"CREATE SEQUENCE {seq}")
        # DML, simple protocol (no parameters)
        expect_primary(c, f"INSERT INTO {t} (id) VALUES (1)")
        expect_primary(c, f"UPDATE {t} SET v = v + 1 WHERE id = 1")
        expect_primary(c, f"INSERT INTO {t} (id) VALUES (2) RETURNING inet_server_port()")
        expect_primary(c, f"UPDATE {t} SET v = v + 1 WHERE id = 2 RETURNING inet_server_port()")
        expect_primary(c, f"DELETE FROM {t} WHERE id = 2 RETURNING inet_server_port()")
        expect_primary(c, f"DELETE FROM {t} WHERE id = 1")
        expect_primary(c, f"WITH x AS (INSERT INTO {t} (id) VALUES (3) RETURNING *) SELECT x.id, inet_server_port() FROM x")
        expect_primary(c, f"SELECT id, inet_server_port() FROM {t} WHERE id = 3 FOR UPDATE")
        expect_primary(c, f"SELECT id, inet_server_port() FROM {t} WHERE id = 3 FOR SHARE")
        expect_primary(c, f"SELECT inet_server_port() AS port INTO {newt}")
        expect_primary(c, f"SELECT nextval('{seq}'), inet_server_port()")
        expect_primary(c, "SELECT pg_advisory_lock(1), pg_advisory_unlock(1), inet_server_port()")
        expect_primary(c, "SELECT pg_notify('c', 'x'), inet_server_port()")
        expect_primary(c, "SELECT set_config('a.b', 'c', false), inet_server_port()")
        expect_primary(c, "SELECT txid_current(), inet_server_port()")
        expect_primary(
            c,
            f"CREATE FUNCTION {fn}(i int) RETURNS int LANGUAGE plpgsql VOLATILE AS "
            f"$$ BEGIN INSERT INTO {t} (id) VALUES (i); RETURN inet_server_port(); END $$",
        )
        expect_primary(c, f"SELECT {fn}(4)")
        # extended protocol (parameters)
        expect_primary(c, f"INSERT INTO {t} (id) VALUES (%s) RETURNING inet_server_port()", (5,))
        expect_primary(c, f"UPDATE {t} SET v = %s WHERE id = 5 RETURNING inet_server_port()", (7,))
        expect_primary(c, f"SELECT nextval(%s), inet_server_port()", (seq,))
        expect_primary(c, f"SELECT {fn}(%s)", (6,))
        # COPY FROM STDIN
        try:
            with c.cursor() as cur:
                with cur.copy(f"COPY {t} (id) FROM STDIN") as cp:
                    for i in (100, 101, 102):
                        cp.write_row((i,))
        except psycopg.Error as e:
            failures.append(f"COPY FROM STDIN: {e.sqlstate} {e}")
        # a multi-statement simple query: SELECT 1; INSERT ...
        try:
            cur = c.execute(f"SELECT 1; INSERT INTO {t} (id) VALUES (7) RETURNING inet_server_port()")
            results = [cur.fetchall()]
            while cur.nextset():
                results.append(cur.fetchall())
            if results[-1] != [(prim,)]:
                failures.append(f"multi-statement: last result {results[-1]}, expected [({prim},)]")
        except psycopg.Error as e:
            failures.append(f"multi-statement: {e.sqlstate} {e}")

    async def with_asyncpg():
        conn = await asyncpg_connect(p)
        try:
            for sql, args in [
                (f"INSERT INTO {t} (id) VALUES ($1) RETURNING inet_server_port()", (200,)),
                (f"UPDATE {t} SET v = $1 WHERE id = 200 RETURNING inet_server_port()", (9,)),
                (f"WITH x AS (INSERT INTO {t} (id) VALUES ($1) RETURNING *) SELECT inet_server_port() FROM x", (201,)),
                (f"SELECT inet_server_port() FROM {t} WHERE id = $1 FOR UPDATE", (200,)),
                ("SELECT nextval($1::regclass)::int * 0 + inet_server_port()", (seq,)),
                (f"DELETE FROM {t} WHERE id = $1 RETURNING inet_server_port()", (201,)),
            ]:
                try:
                    got = await conn.fetchval(sql, *args)
                except asyncpg.PostgresError as e:
                    failures.append(f"asyncpg {sql!r}: {e.sqlstate} {e}")
                    continue
                if got != prim:
                    failures.append(f"asyncpg {sql!r}: answered by port {got}, not the primary {prim}")
            try:
                await conn.execute(f"INSERT INTO {t} (id) VALUES (300)")  # simple protocol
            except asyncpg.PostgresError as e:
                failures.append(f"asyncpg execute INSERT: {e.sqlstate} {e}")
        finally:
            await conn.close()

    asyncio.run(with_asyncpg())

    with cluster.admin() as a:
        ids = {r[0] for r in a.execute(f"SELECT id FROM {t}").fetchall()}
        expected = {3, 4, 5, 6, 7, 100, 101, 102, 200, 300}
        if not expected <= ids:
            failures.append(f"rows missing on the primary: {sorted(expected - ids)} (have {sorted(ids)})")
        try:
            if a.execute(f"SELECT port FROM {newt}").fetchall() != [(prim,)]:
                failures.append(f"SELECT INTO table {newt} has the wrong content")
        except psycopg.Error as e:
            failures.append(f"SELECT INTO table {newt} not on the primary: {e}")

    with p.connect() as c:
        expect_primary(c, f"DROP TABLE {newt}")
        expect_primary(c, f"DROP FUNCTION {fn}(int)")
        expect_primary(c, f"DROP TABLE {t}")
        expect_primary(c, f"DROP SEQUENCE {seq}")

    assert not failures, "writes that did not run on the primary:\n" + "\n".join(failures)
    p.assert_alive()


# ---- 3. transactions ----------------------------------------------------------------------


def test_transactions_stay_on_one_backend(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)})
    t = uniq("tx")
    with p.connect() as c:
        c.execute(f"CREATE TABLE {t} (id int)")
        for _ in range(3):
            c.execute("BEGIN")
            seen = ports(c, 2)
            seen.append(c.execute(f"INSERT INTO {t} VALUES (1) RETURNING inet_server_port()").fetchone()[0])
            c.execute("COMMIT")
            assert seen == [cluster.primary_port] * 3, f"BEGIN; SELECT; SELECT; INSERT; COMMIT ran on {seen}"

        replica_ports = {fast.port, delayed.port}
        for begin in ["BEGIN READ ONLY", "START TRANSACTION READ ONLY"] * 3:
            c.execute(begin)
            seen = ports(c, 3)
            c.execute("COMMIT")
            assert len(set(seen)) == 1 and seen[0] in replica_ports, f"{begin}; SELECT x3 ran on {seen}"
        c.execute(f"DROP TABLE {t}")


# ---- 4. hints and session preference ------------------------------------------------------


def test_primary_hint(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)})
    with p.connect() as c:
        assert set(ports(c, 6)) <= {fast.port, delayed.port}, "plain reads should go to the replicas"
        assert set(ports(c, 6, f"/* switchyard:primary */ {PORT}")) == {cluster.primary_port}
        assert set(ports(c, 6, f"{PORT} /* switchyard:primary */")) == {cluster.primary_port}, "the hint may be anywhere"


@pytest.mark.parametrize("value", ["primary", "'primary'"])
def test_session_route_preference(start_proxy_sections, cluster, replicas_up, value):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)})
    with p.connect() as c:
        c.execute(f"SET switchyard.route = {value}")
        assert set(ports(c, 6)) == {cluster.primary_port}, f"SET switchyard.route = {value} should send reads to the primary"
        c.execute("SET switchyard.route = auto")
        assert set(ports(c, 6)) <= {fast.port, delayed.port}, "SET switchyard.route = auto should send reads to the replicas again"


def test_route_preference_from_startup_options_and_from_a_set_the_server_ran(start_proxy_sections, cluster, replicas_up):
    """switchyard.route given in the startup packet (options=-c ...), or SET through the extended protocol
    (which the proxy does not answer itself: the server keeps it as a placeholder setting), routes like
    SET switchyard.route does. Read-your-writes is off: the SET is a write, and the reads after it must not go
    to the primary only because no replica has replayed it yet."""
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)}, read_your_writes="off")
    with p.connect(options="-c switchyard.route=primary") as c:
        assert set(ports(c, 6)) == {cluster.primary_port}, "options=-c switchyard.route=primary should send reads to the primary"
    with p.connect() as c:
        assert set(ports(c, 6)) <= {fast.port, delayed.port}, "without it, reads go to the replicas"
        c.execute("SET switchyard.route = 'replica'", prepare=True)
        assert set(ports(c, 6)) <= {fast.port, delayed.port}
        c.execute("SET switchyard.route = 'primary'", prepare=True)
        assert set(ports(c, 6)) == {cluster.primary_port}, "a SET the server ran should send reads to the primary"


def test_replica_hint_moves_volatile_reads_but_never_writes(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)})
    prim, reps = cluster.primary_port, {fast.port, delayed.port}
    t = uniq("hint")
    with p.connect() as c:
        c.execute(f"CREATE TABLE {t} (id int)")
        assert set(ports(c, 6, "SELECT inet_server_port(), random()")) == {prim}, "random() without a hint is volatile"
        got = set(ports(c, 6, "/* switchyard:replica */ SELECT inet_server_port(), random()"))
        assert got <= reps, f"/* switchyard:replica */ SELECT random() ran on {got}"
        got = port_of(c, f"/* switchyard:replica */ INSERT INTO {t} VALUES (1) RETURNING inet_server_port()")
        assert got == prim, "the replica hint must never move a write"
        c.execute(f"DROP TABLE {t}")


# ---- 5. read-your-writes ------------------------------------------------------------------


def ryw_table(p, cluster, delayed) -> str:
    """A table made through the proxy and already replayed on the delayed replica."""
    t = uniq("ryw")
    with p.connect() as c:
        c.execute(f"CREATE TABLE {t} (id int)")
    delayed.wait_replayed(primary_lsn(cluster))
    return t


@pytest.mark.parametrize("form", ["autocommit", "transaction"])
def test_read_your_writes_never_sees_a_stale_replica(start_proxy_sections, cluster, replicas_up, form):
    """Autocommit writes learn the WAL position with a query after the write; in BEGIN ... COMMIT the query
    goes in the same write as the COMMIT (deferred BEGIN and all)."""
    _, delayed = replicas_up
    # A short timeout keeps the loop fast: reads the replica cannot serve in time go to the primary.
    p = routing_proxy(start_proxy_sections, {"d": (delayed, 1)}, read_your_writes="lsn", read_your_writes_timeout="100ms")
    t = ryw_table(p, cluster, delayed)
    stale = []
    with p.connect() as c:
        iterations = RYW_ITERATIONS if form == "autocommit" else RYW_ITERATIONS // 2
        for i in range(iterations):
            if form == "transaction":
                c.execute("BEGIN")
                c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
                c.execute("COMMIT")
            else:
                c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
            n = c.execute(f"SELECT count(*) FROM {t} WHERE id = %s", (i,)).fetchone()[0]
            if n != 1:
                stale.append(i)
        assert not stale, f"{len(stale)} of {iterations} reads missed the client's own insert: {stale[:20]}"
        time.sleep(1.5)  # the replica (500 ms behind) has caught up; nothing of ours is pending
        assert set(ports(c, 5)) == {delayed.port}, "with no write pending, reads should go to the replica"
        c.execute(f"DROP TABLE {t}")


def test_read_your_writes_waits_for_the_replica(start_proxy_sections, cluster, replicas_up):
    _, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"d": (delayed, 1)}, read_your_writes="lsn", read_your_writes_timeout="2s")
    t = ryw_table(p, cluster, delayed)
    answered = []
    with p.connect() as c:
        for i in range(5):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
            n, port = c.execute(f"SELECT count(*), inet_server_port() FROM {t} WHERE id = %s", (i,)).fetchone()
            assert n == 1, f"iteration {i}: the read (on port {port}) missed the client's own insert"
            answered.append(port)
        c.execute(f"DROP TABLE {t}")
    assert delayed.port in answered, f"reads should wait ~0.5 s for the delayed replica, not go to the primary: {answered}"


def test_read_only_transaction_leaves_the_next_read_on_the_replica(start_proxy_sections, cluster, replicas_up):
    """BEGIN; SELECT ...; COMMIT goes to the primary but changes nothing: it learns no WAL position, so the
    client's next read goes to the delayed replica at once although the primary is ahead of it (another
    client's insert). A write transaction still makes the next read wait for its own row."""
    _, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"d": (delayed, 1)}, read_your_writes="lsn", read_your_writes_timeout="100ms")
    t = ryw_table(p, cluster, delayed)
    with p.connect() as other, p.connect() as c:
        for i in range(3):
            other.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
            c.execute("BEGIN")
            assert port_of(c) == cluster.primary_port
            c.execute(f"SELECT count(*) FROM {t}")
            c.execute("COMMIT")
            got = port_of(c)
            assert got == delayed.port, f"round {i}: the read after a read-only transaction went to {got}"
        c.execute("BEGIN")
        c.execute(f"INSERT INTO {t} VALUES (100)")
        c.execute("COMMIT")
        assert c.execute(f"SELECT count(*) FROM {t} WHERE id = 100").fetchone()[0] == 1, "the client's own insert"
        c.execute(f"DROP TABLE {t}")


def test_without_read_your_writes_the_delayed_replica_is_stale(start_proxy_sections, cluster, replicas_up):
    """Shows the read-your-writes test can fail: without it the loop reads its rows too early."""
    _, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"d": (delayed, 1)}, read_your_writes="off")
    t = ryw_table(p, cluster, delayed)
    misses = 0
    with p.connect() as c:
        for i in range(10):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
            misses += c.execute(f"SELECT count(*) FROM {t} WHERE id = %s", (i,)).fetchone()[0] == 0
        c.execute(f"DROP TABLE {t}")
    assert misses >= 1, "with read_your_writes = off and a 500 ms apply delay, some reads should miss the insert"


# ---- 6. replica faults --------------------------------------------------------------------


class ReadLoop(threading.Thread):
    """Runs SELECT inet_server_port() in a loop through the proxy, reconnecting after errors;
    records (time, port) and (time, error)."""

    def __init__(self, p):
        super().__init__(daemon=True)
        self.p = p
        self.ok: list[tuple[float, int]] = []
        self.errors: list[tuple[float, str]] = []
        self.done = threading.Event()

    def run(self):
        conn = None
        while not self.done.is_set():
            try:
                if conn is None:
                    conn = self.p.connect()
                self.ok.append((time.monotonic(), port_of(conn)))
            except psycopg.Error as e:
                self.errors.append((time.monotonic(), f"{e.sqlstate} {e}".strip()))
                if conn is not None and (conn.broken or conn.closed):
                    conn.close()
                    conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def ports_between(self, t0: float, t1: float = float("inf")) -> list[int]:
        return [port for t, port in self.ok if t0 <= t < t1]

    def stop(self):
        self.done.set()
        self.join(10)


def test_replica_stopped_and_restarted_under_reads(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(
        start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)},
        health_check_reset_timeout="1s", health_check_failures=3, health_check_successes=2,
    )
    loop = ReadLoop(p)
    loop.start()
    problems = []
    try:
        time.sleep(0.5)
        t_stop = time.monotonic()
        fast.stop()
        time.sleep(2.5)
        after = loop.ports_between(t_stop + 1.5)
        if not after:
            problems.append(f"no reads succeeded after the replica stopped; errors: {loop.errors[-5:]}")
        if fast.port in after:
            problems.append("reads still reached the stopped replica 1.5 s after it stopped")
        if len(loop.errors) > 5:
            span = loop.errors[-1][0] - loop.errors[0][0]
            problems.append(
                f"{len(loop.errors)} errors over {span:.2f}s after stopping one replica (only in-flight statements "
                f"may fail): {[m for _, m in loop.errors[:3]]}"
            )
        errors_while_down = len(loop.errors)

        fast.start()
        t_start = time.monotonic()
        deadline = t_start + 10
        while fast.port not in loop.ports_between(t_start) and time.monotonic() < deadline:
            time.sleep(0.1)
        if fast.port not in loop.ports_between(t_start):
            problems.append("the restarted replica did not get reads again within 10 s (reset timeout 1 s, 2 good probes)")
        if len(loop.errors) != errors_while_down:
            problems.append(f"errors after the replica came back: {loop.errors[errors_while_down:][:3]}")
    finally:
        loop.stop()
    assert not problems, "\n".join(problems)
    p.assert_alive()


def test_fallback_error_when_all_replicas_are_down(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)}, replica_fallback="error")
    t = uniq("fb")
    problems = []
    with p.connect() as c:
        c.execute(f"CREATE TABLE {t} (id int)")
        assert set(ports(c, 4)) <= {fast.port, delayed.port}
        fast.stop()
        delayed.stop()
        time.sleep(1.5)  # 3 failed probes at 200 ms take them out
        state, msg, took = sqlstate_and_time(lambda: c.execute(PORT).fetchone())
        assert state == "08006" and "no replica available" in msg, f"read with all replicas down: {state} {msg}"
        assert took < 1.0, f"the read took {took:.2f}s to fail"
        try:
            if port_of(c, f"INSERT INTO {t} VALUES (1) RETURNING inet_server_port()") != cluster.primary_port:
                problems.append("the write did not run on the primary")
        except psycopg.Error as e:
            problems.append(f"write on the same connection after the 08006 read: {e.sqlstate} {e}")
    try:
        with p.connect() as c:
            if port_of(c, f"INSERT INTO {t} VALUES (2) RETURNING inet_server_port()") != cluster.primary_port:
                problems.append("the write of a new client did not run on the primary")
    except psycopg.Error as e:
        problems.append(f"a new client's write with all replicas down: {e.sqlstate} {str(e).strip()}")
    cluster.sql(f"DROP TABLE {t}")
    assert not problems, "\n".join(problems)


def test_fallback_primary_when_all_replicas_are_down(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)}, replica_fallback="primary")
    fast.stop()
    delayed.stop()
    time.sleep(1.5)
    with p.connect() as c:
        assert set(ports(c, 4)) == {cluster.primary_port}


# ---- 7. primary down ----------------------------------------------------------------------


def test_primary_down_writes_fail_fast_reads_work(start_proxy_sections, cluster, replicas_up):
    fast, _ = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1)}, primary_port=free_port(), server_connect_timeout="3s")
    with p.connect() as c:
        state, msg, took = sqlstate_and_time(lambda: c.execute("CREATE TABLE sy_never (id int)"))
        assert state == "08006", f"write with the primary down: {state} {msg}"
        assert took < 1.0, f"the write took {took:.2f}s to fail"
    with p.connect() as c:
        assert set(ports(c, 4)) == {fast.port}, "reads should still be served by the replica"


# ---- 8. session mode ----------------------------------------------------------------------


def test_session_mode_uses_the_primary(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    p = routing_proxy(start_proxy_sections, {"r1": (fast, 1), "r2": (delayed, 1)}, pool_mode="session")
    with p.connect() as c:
        assert set(ports(c, 10)) == {cluster.primary_port}
        c.execute("BEGIN READ ONLY")
        assert set(ports(c, 2)) == {cluster.primary_port}
        c.execute("COMMIT")


def test_session_mode_user_uses_the_primary_next_to_transaction_mode(start_proxy_sections, cluster, replicas_up):
    fast, delayed = replicas_up
    reps = {fast.port, delayed.port}
    sections = {
        "replica.r1": {"host": "127.0.0.1", "port": fast.port, "weight": 1},
        "replica.r2": {"host": "127.0.0.1", "port": delayed.port, "weight": 1},
        "user.sy_md5": {"pool_mode": "session"},
    }
    p = start_proxy_sections(
        sections=sections, pool_mode="transaction", health_check_user="sy_scram",
        health_check_database="sydb", health_check_interval="200ms",
    )
    time.sleep(1.0)
    with p.connect("sy_md5") as s, p.connect() as t:
        assert set(ports(s, 8)) == {cluster.primary_port}, "a session-mode user should stay on the primary"
        assert set(ports(t, 8)) <= reps, "a transaction-mode user should read from the replicas"


def test_role_auto_writes_follow_a_promotion(start_proxy_sections, cluster, second_replica):
    """role = auto on both backends: writes go to whichever reports pg_is_in_recovery() = false, and after a
    replica is promoted (a failover done by an HA manager) the proxy sends writes to it without a restart.
    The old primary stays up here (other tests share it); the most recently promoted backend wins."""
    rep = second_replica("failover")
    table = uniq("ryw_failover")
    cluster.sql(f"CREATE TABLE {table} (id int)")
    cluster.sql(f"GRANT ALL ON {table} TO sy_scram")
    rep.wait_replayed(primary_lsn(cluster))
    import conftest
    base = conftest.render_config
    conftest.render_config = lambda *a, **k: base(*a, **k).replace("[primary]\n", "[primary]\nrole = auto\n")
    try:
        sections = {"replica.f": {"host": "127.0.0.1", "port": rep.port, "weight": 1, "role": "auto"}}
        p = start_proxy_sections(sections=sections, pool_mode="transaction", health_check_user="sy_scram",
                                 health_check_database="sydb", health_check_interval="200ms")
    finally:
        conftest.render_config = base
    time.sleep(1.0)
    with p.connect("sy_scram") as c:
        assert port_of(c, f"INSERT INTO {table} VALUES (1) RETURNING inet_server_port()") == cluster.primary_port
        rep._pg_ctl("promote", "-w")
        deadline = time.monotonic() + 10
        port = None
        while time.monotonic() < deadline:
            port = port_of(c, f"INSERT INTO {table} VALUES (2) RETURNING inet_server_port()")
            if port == rep.port:
                break
            time.sleep(0.2)
        assert port == rep.port, "writes did not follow the promoted backend"
    p.assert_alive()
