"""Transaction pooling: many clients share a few server connections, each client keeps its own
session state (SETs, prepared statements by name), session-only features pin a server, and the pool
opens, warms, idles out, recycles and refills server connections. Tests not marked proxy_only
describe plain Postgres behaviour and also pass with SWITCHYARD_TEST_DIRECT=1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import struct
import subprocess
import threading
import time

import asyncpg
import psycopg
import pytest
from psycopg import errors

from conftest import DIRECT, PASSWORDS, delaying_relay, pg_env, raise_fd_limit, process_fd_limit, send_cancel  # noqa: F401
from pgwire import RawConn, data_rows, error_fields, message, query

TX_USER = "sy_txn"
TX_PASS = "txn-pass"
USERS = dict(PASSWORDS, **{TX_USER: TX_PASS})


# ---- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def tx_user(cluster):
    """A role only this module uses, so pg_stat_activity counts only our pool's servers."""
    cluster.ensure_role(TX_USER, TX_PASS)
    with cluster.superuser() as c:
        c.execute(f"GRANT ALL ON SCHEMA public TO {TX_USER}")
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (TX_USER,))
    deadline = time.monotonic() + 5
    while server_pids(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    return TX_USER


@pytest.fixture
def tx_proxy(start_proxy_sections, tx_user):
    """Factory: a transaction-mode proxy (md5 clients, so logins are cheap) with pool size `size`."""

    def start(size: int = 2, **kw):
        settings = dict(pool_mode="transaction", default_pool_size=size, query_wait_timeout="10s")
        settings.update(kw)
        return start_proxy_sections(auth_type="md5", users=USERS, **settings)

    return start


def connect(p, **kw) -> psycopg.Connection:
    kw.setdefault("autocommit", True)
    return p.connect(TX_USER, TX_PASS, **kw)


def server_pids(cluster) -> set[int]:
    """Backends of TX_USER on the primary (the proxy's server connections)."""
    with cluster.admin() as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'", (TX_USER,)
        ).fetchall()
    return {r[0] for r in rows}


def wait_until(pred, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def asyncpg_connect(p, **kw):
    return asyncpg.connect(
        host=p.host, port=p.port, user=TX_USER, password=TX_PASS, database="sydb", ssl=False, timeout=15, **kw
    )


def attempt_query(p, timeout: float = 3.0) -> str:
    """Logs in and runs SELECT 1 as a fresh client: 'ok', 'error <sqlstate>', or 'waiting' (still
    not done after `timeout`)."""

    async def run():
        conn = await asyncpg_connect(p)
        try:
            return await conn.fetchval("SELECT 1")
        finally:
            conn.terminate()

    async def bounded():
        try:
            await asyncio.wait_for(run(), timeout)
            return "ok"
        except asyncio.TimeoutError:
            return "waiting"
        except asyncpg.PostgresError as e:
            return f"error {e.sqlstate}"
        except (OSError, asyncpg.InterfaceError, ConnectionError) as e:
            return f"error {e!r}"

    return asyncio.run(bounded())


class Worker(threading.Thread):
    """Another client doing short transactions until stopped; records backend pids and errors."""

    def __init__(self, p, pause: float = 0.01):
        super().__init__(daemon=True)
        self.p, self.pause = p, pause
        self.stop_event = threading.Event()
        self.pids: set[int] = set()
        self.errors: list[str] = []
        self.count = 0

    def run(self):
        try:
            # Unnamed statements only: pool-behaviour tests should not depend on prepared statements.
            with connect(self.p, prepare_threshold=None) as conn:
                while not self.stop_event.is_set():
                    with conn.transaction():
                        self.pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
                        assert conn.execute("SELECT %s::int + 1", (self.count,)).fetchone()[0] == self.count + 1
                    self.count += 1
                    time.sleep(self.pause)
        except Exception as e:  # noqa: BLE001 - asserted by the test
            self.errors.append(repr(e))

    def finish(self):
        self.stop_event.set()
        self.join(15)
        assert not self.is_alive(), "worker client hung"
        assert not self.errors, self.errors
        assert self.count > 0, "worker client never completed a transaction"


# ---- raw extended-protocol frames (names under the test's control) -------------------------


def parse(name: str, sql: str) -> bytes:
    return message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def bind(stmt: str, params: list[str] = (), portal: str = "") -> bytes:
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!hh", 0, len(params))
    for v in params:
        body += struct.pack("!i", len(v.encode())) + v.encode()
    return message(b"B", body + struct.pack("!h", 0))


def execute(portal: str = "") -> bytes:
    return message(b"E", portal.encode() + b"\0" + struct.pack("!i", 0))


def close_statement(name: str) -> bytes:
    return message(b"C", b"S" + name.encode() + b"\0")


SYNC = message(b"S")


def run_named(c: RawConn, name: str, params: list[str] = ()) -> tuple[list, dict | None]:
    """Bind + Execute + Sync of statement `name`: (rows, ErrorResponse fields or None)."""
    c.send(bind(name, list(params)) + execute() + SYNC)
    msgs = c.read_until_ready()
    err = next((error_fields(p) for k, p in msgs if k == b"E"), None)
    return data_rows(msgs), err


def prepare_named(c: RawConn, name: str, sql: str) -> None:
    c.send(parse(name, sql) + SYNC)
    msgs = c.read_until_ready()
    assert [k for k, _ in msgs] == [b"1", b"Z"], msgs


def raw_login(p) -> RawConn:
    c = RawConn(p.host, p.port, timeout=15)
    c.login(TX_USER, TX_PASS)
    return c


# ---- 1. pgbench ---------------------------------------------------------------------------

BENCH_DB = "sy_txbench"


@pytest.fixture(scope="module")
def bench_db(cluster, pg_bin):
    """A database of its own, initialised directly on the primary (pgbench -i -s 1)."""
    with cluster.superuser(dbname="postgres") as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            c.execute(f"CREATE DATABASE {BENCH_DB} OWNER sy_trust")
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(cluster.primary_port), PGUSER="sy_trust",
               PGDATABASE=BENCH_DB)
    r = subprocess.run([os.path.join(pg_bin, "pgbench"), "-i", "-s", "1", "-q"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"pgbench -i failed:\n{r.stdout}\n{r.stderr}"
    return BENCH_DB


def run_pgbench(pg_bin, p, *args) -> str:
    env = pg_env(p, "sy_trust")
    env["PGDATABASE"] = BENCH_DB
    r = subprocess.run([os.path.join(pg_bin, "pgbench"), "-n", *args], env=env, capture_output=True, text=True,
                       timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"pgbench {' '.join(args)} exited {r.returncode}:\n{out[-4000:]}"
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and int(m.group(1)) == 0, out
    return out


@pytest.mark.proxy_only
def test_pgbench_200_clients_prepared_through_pool_of_5(start_proxy, pg_bin, bench_db):
    raise_fd_limit(4096)
    p = start_proxy(auth_type="trust", pool_mode="transaction", default_pool_size=5, max_client_conn=1000)
    assert process_fd_limit(p.pid) >= 1024
    out = run_pgbench(pg_bin, p, "-M", "prepared", "-c", "200", "-j", "2", "-T", "5")
    print(out)
    p.assert_alive()


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes_through_small_pool(start_proxy, pg_bin, bench_db, mode):
    p = start_proxy(auth_type="trust", pool_mode="transaction", default_pool_size=5)
    run_pgbench(pg_bin, p, "-M", mode, "-c", "20", "-j", "2", "-T", "3")
    p.assert_alive()


# ---- 2. psycopg, every statement prepared ----------------------------------------------------


def test_psycopg_prepared_threads(tx_proxy, cluster):
    p = tx_proxy(size=3)
    with connect(p) as c:
        c.execute("DROP TABLE IF EXISTS txp_items")
        c.execute("CREATE TABLE txp_items (t int, i int, v text, PRIMARY KEY (t, i))")
    threads, per_thread = 20, 200
    errors_seen: list[str] = []

    def client(t: int):
        try:
            with connect(p, prepare_threshold=0) as conn:
                kept = 0
                for i in range(per_thread):
                    v = f"v{t}-{i}"
                    if i % 10 == 9:
                        # A rolled-back transaction (psycopg then sends DEALLOCATE ALL and re-prepares).
                        with conn.transaction(force_rollback=True):
                            conn.execute("INSERT INTO txp_items VALUES (%s, %s, %s)", (t, i, v))
                    else:
                        with conn.transaction():
                            conn.execute("INSERT INTO txp_items VALUES (%s, %s, %s)", (t, i, v))
                            got = conn.execute("SELECT v FROM txp_items WHERE t = %s AND i = %s", (t, i)).fetchone()
                            assert got == (v,), (t, i, got)
                        kept += 1
                    n = conn.execute("SELECT count(*) FROM txp_items WHERE t = %s", (t,)).fetchone()[0]
                    assert n == kept, (t, i, n, kept)
                    assert conn.execute("SELECT %s::int * 2", (i,)).fetchone()[0] == 2 * i
        except Exception as e:  # noqa: BLE001 - asserted below
            errors_seen.append(f"client {t}: {e!r}")

    ths = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    assert not any(th.is_alive() for th in ths), "a client hung"
    assert not errors_seen, errors_seen[:5]
    with connect(p) as c:
        assert c.execute("SELECT count(*) FROM txp_items").fetchone()[0] == threads * (per_thread - per_thread // 10)
    if not DIRECT:
        assert len(server_pids(cluster)) <= 3


# ---- 3. asyncpg ---------------------------------------------------------------------------


def test_asyncpg_statement_cache_many_connections(tx_proxy, cluster):
    p = tx_proxy(size=3)

    async def client(k: int):
        conn = await asyncpg_connect(p)
        try:
            for i in range(100):
                assert await conn.fetchval("select $1::int + 1", i) == i + 1
                if i % 10 == 0:
                    assert await conn.fetchval("select $1::text || '-x'", f"c{k}") == f"c{k}-x"
                    assert await conn.fetchval("select count(*) from generate_series(1, $1::int)", i) == i
                    row = await conn.fetchrow("select $1::int as a, $2::text as b", k, "b")
                    assert (row["a"], row["b"]) == (k, "b")
        finally:
            await conn.close()

    async def main():
        results = await asyncio.gather(*(client(k) for k in range(50)), return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    failures = asyncio.run(main())
    assert not failures, failures[:5]
    if not DIRECT:
        assert len(server_pids(cluster)) <= 3


def test_asyncpg_prepared_statement_across_transactions(tx_proxy):
    p = tx_proxy(size=3)

    async def noise(stop: asyncio.Event):
        conn = await asyncpg_connect(p)
        n = 0
        while not stop.is_set():
            async with conn.transaction():
                assert await conn.fetchval("select $1::int - 1", n) == n - 1
            n += 1
        await conn.close()
        return n

    async def main():
        stop = asyncio.Event()
        others = [asyncio.create_task(noise(stop)) for _ in range(5)]
        conn = await asyncpg_connect(p)
        stmt = await conn.prepare("select $1::int * 3, $2::text")
        for i in range(60):
            async with conn.transaction():
                assert tuple(await stmt.fetchrow(i, "t")) == (i * 3, "t")
            assert await stmt.fetchval(i, "u") == i * 3  # outside a transaction too
            await asyncio.sleep(0)
        await conn.close()
        stop.set()
        counts = await asyncio.gather(*others)
        assert all(n > 0 for n in counts), counts

    asyncio.run(main())


# ---- 4. SET isolation ---------------------------------------------------------------------

A_SETTINGS = {
    "search_path": ("txp_a, public", "SET search_path = txp_a, public"),
    "application_name": ("A", "SET application_name = 'A'"),
    "statement_timeout": ("5s", "SET statement_timeout = '5s'"),
    "TimeZone": ("UTC", "SET TimeZone = 'UTC'"),
    "DateStyle": ("German, DMY", "SET DateStyle = 'German'"),
}


def show_all(conn) -> dict[str, str]:
    return {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in A_SETTINGS}


@pytest.fixture
def who_tables(cluster, tx_user):
    """public.txp_who says 'public', txp_a.txp_who says 'A': shows which search_path the server used."""
    with cluster.superuser() as c:
        c.execute("DROP SCHEMA IF EXISTS txp_a CASCADE")
        c.execute("DROP TABLE IF EXISTS public.txp_who")
        c.execute("CREATE SCHEMA txp_a")
        c.execute("CREATE TABLE txp_a.txp_who AS SELECT 'A'::text AS v")
        c.execute("CREATE TABLE public.txp_who AS SELECT 'public'::text AS v")
        c.execute(f"GRANT USAGE ON SCHEMA txp_a TO {TX_USER}")
        c.execute(f"GRANT SELECT ON txp_a.txp_who, public.txp_who TO {TX_USER}")
        c.execute("DROP TABLE IF EXISTS public.txp_rw")
        c.execute("CREATE TABLE public.txp_rw (a int)")
        c.execute(f"GRANT ALL ON public.txp_rw TO {TX_USER}")


def test_set_is_per_client_on_shared_server(tx_proxy, who_tables):
    p = tx_proxy(size=1)
    with connect(p, application_name="A0") as a, connect(p, application_name="B") as b:
        b_defaults = show_all(b)
        assert b_defaults["application_name"] == "B"
        a_defaults = show_all(a)
        assert a_defaults["application_name"] == "A0"
        for _, stmt in A_SETTINGS.values():
            a.execute(stmt)
        a_values = {k: v for k, (v, _) in A_SETTINGS.items()}
        for round_ in range(15):
            assert show_all(a) == a_values, round_
            assert a.execute("SELECT v FROM txp_who").fetchone()[0] == "A"
            assert a.execute("SELECT current_setting('statement_timeout')").fetchone()[0] == "5s"
            assert show_all(b) == b_defaults, round_
            assert b.execute("SELECT v FROM txp_who").fetchone()[0] == "public"
            with b.transaction():
                assert b.execute("SHOW search_path").fetchone()[0] == b_defaults["search_path"]
            with a.transaction():
                assert a.execute("SHOW TimeZone").fetchone()[0] == "UTC"

        # SET LOCAL lasts until the end of its transaction only.
        with a.transaction():
            a.execute("SET LOCAL statement_timeout = '7s'")
            assert a.execute("SHOW statement_timeout").fetchone()[0] == "7s"
        assert a.execute("SHOW statement_timeout").fetchone()[0] == "5s"
        assert b.execute("SHOW statement_timeout").fetchone()[0] == b_defaults["statement_timeout"]

        # A SET inside a rolled-back transaction is undone; inside a committed one it stays.
        a.execute("BEGIN")
        a.execute("SET application_name = 'rolled-back'")
        a.execute("ROLLBACK")
        assert a.execute("SHOW application_name").fetchone()[0] == "A"
        a.execute("BEGIN")
        a.execute("SET application_name = 'failed'")
        with pytest.raises(errors.DivisionByZero):
            a.execute("SELECT 1 / 0")
        a.execute("ROLLBACK")
        assert a.execute("SHOW application_name").fetchone()[0] == "A"
        a.execute("BEGIN")
        a.execute("SET application_name = 'committed'")
        a.execute("COMMIT")
        assert a.execute("SHOW application_name").fetchone()[0] == "committed"
        assert b.execute("SHOW application_name").fetchone()[0] == "B"

        # RESET returns to the session default (the startup value for application_name).
        a.execute("RESET application_name")
        assert a.execute("SHOW application_name").fetchone()[0] == "A0"
        a.execute("RESET search_path")
        assert a.execute("SHOW search_path").fetchone()[0] == a_defaults["search_path"]
        assert a.execute("SELECT v FROM txp_who").fetchone()[0] == "public"
        assert a.execute("SHOW TimeZone").fetchone()[0] == "UTC"
        a.execute("RESET ALL")
        assert show_all(a) == a_defaults
        assert show_all(b) == b_defaults


def test_default_transaction_read_only_does_not_leak(tx_proxy, who_tables):
    p = tx_proxy(size=1)
    with connect(p) as a, connect(p) as b:
        a.execute("SET default_transaction_read_only = on")
        for i in range(5):
            with pytest.raises(errors.ReadOnlySqlTransaction):
                a.execute("INSERT INTO txp_rw VALUES (%s)", (i,))
            b.execute("INSERT INTO txp_rw VALUES (%s)", (i,))
            assert b.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
            assert a.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        a.execute("SET default_transaction_read_only = off")
        a.execute("INSERT INTO txp_rw VALUES (100)")
        assert b.execute("SELECT count(*) FROM txp_rw").fetchone()[0] == 6


# ---- 5. LISTEN / NOTIFY -------------------------------------------------------------------


def test_listen_notify_with_other_clients_working(tx_proxy):
    p = tx_proxy(size=2)
    w = Worker(p)
    with connect(p) as a, connect(p) as b:
        a.execute("LISTEN txp_chan")
        w.start()
        time.sleep(0.2)
        b.execute("NOTIFY txp_chan, 'one'")
        b.execute("SELECT pg_notify('txp_chan', 'two')")
        got = [(n.channel, n.payload) for n in a.notifies(timeout=5, stop_after=2)]
        assert got == [("txp_chan", "one"), ("txp_chan", "two")]
        assert a.execute("SELECT 1").fetchone()[0] == 1
        b.execute("NOTIFY txp_chan, 'three'")
        got = [(n.channel, n.payload) for n in a.notifies(timeout=5, stop_after=1)]
        assert got == [("txp_chan", "three")]
        a.execute("UNLISTEN *")
        b.execute("NOTIFY txp_chan, 'unheard'")
        assert [n.payload for n in a.notifies(timeout=0.5)] == []
    w.finish()


@pytest.mark.proxy_only
def test_listen_pins_and_unlisten_unpins(tx_proxy):
    p = tx_proxy(size=1, query_wait_timeout="1s")
    with connect(p) as a:
        a.execute("LISTEN txp_chan")
        time.sleep(0.2)
        assert attempt_query(p) != "ok", "a client got the only server while another LISTENs on it"
        a.execute("UNLISTEN *")
        time.sleep(0.2)
        assert attempt_query(p) == "ok", "the server stayed pinned after UNLISTEN *"
        assert attempt_query(p) == "ok"


# ---- 6. advisory locks --------------------------------------------------------------------


def test_session_advisory_lock_keeps_its_server(tx_proxy):
    p = tx_proxy(size=2)
    w = Worker(p)
    w.start()
    with connect(p) as a, connect(p) as b:
        a.execute("SELECT pg_advisory_lock(424242)")
        for _ in range(5):
            assert a.execute("SELECT 1").fetchone()[0] == 1
            assert b.execute("SELECT pg_try_advisory_lock(424242)").fetchone()[0] is False
        with a.transaction():
            assert a.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242 "
                             "AND pid = pg_backend_pid()").fetchone()[0] == 1
        assert a.execute("SELECT pg_advisory_unlock(424242)").fetchone()[0] is True
        assert b.execute("SELECT pg_try_advisory_lock(424242)").fetchone()[0] is True
        assert b.execute("SELECT pg_advisory_unlock(424242)").fetchone()[0] is True
    w.finish()


# ---- 7. temp tables -----------------------------------------------------------------------


def test_temp_table_survives_across_transactions(tx_proxy):
    p = tx_proxy(size=2)
    w = Worker(p)
    w.start()
    with connect(p) as a, connect(p) as b:
        a.execute("CREATE TEMP TABLE txp_tmp (a int)")
        for i in range(10):
            with a.transaction():
                a.execute("INSERT INTO txp_tmp VALUES (%s)", (i,))
            assert a.execute("SELECT count(*) FROM txp_tmp").fetchone()[0] == i + 1
            assert b.execute("SELECT to_regclass('txp_tmp')").fetchone()[0] is None
        assert a.execute("SELECT sum(a) FROM txp_tmp").fetchone()[0] == 45
    w.finish()


# ---- 8. DDL under prepared statements -------------------------------------------------------


@pytest.fixture
def ddl_table(cluster, tx_user):
    with cluster.superuser() as c:
        c.execute("DROP TABLE IF EXISTS public.txp_ddl")
        c.execute("CREATE TABLE public.txp_ddl (a int)")
        c.execute("INSERT INTO public.txp_ddl VALUES (1)")
        c.execute(f"ALTER TABLE public.txp_ddl OWNER TO {TX_USER}")


def test_ddl_then_asyncpg_reprepares(tx_proxy, cluster, ddl_table):
    """asyncpg's statement cache and an explicit prepare: after ALTER TABLE the first execution may
    fail with 0A000 (cached plan must not change result type), the next ones must work."""
    p = tx_proxy(size=2)

    async def main():
        a, b = await asyncpg_connect(p), await asyncpg_connect(p)
        sql = "select * from txp_ddl"
        for _ in range(6):
            for c in (a, b):
                assert len((await c.fetch(sql))[0]) == 1
        stmt = await a.prepare(sql)
        assert len((await stmt.fetchrow())) == 1
        with cluster.admin() as admin:
            admin.execute("ALTER TABLE txp_ddl ADD COLUMN b int DEFAULT 2")
        for who, c in (("a", a), ("b", b)):
            for attempt in range(8):
                try:
                    row = (await c.fetch(sql))[0]
                except asyncpg.PostgresError as e:
                    assert e.sqlstate == "0A000", e
                    assert attempt == 0, f"client {who}: attempt {attempt} after the DDL failed again: {e}"
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. asyncpg's ProtocolError on a row/description mismatch
                    pytest.fail(f"client {who}: attempt {attempt} after the DDL: {e!r}")
                assert tuple(row) == (1, 2), (who, attempt, row)
        # The explicitly prepared statement fails (as in Postgres); preparing the same text again works.
        try:
            await stmt.fetchrow()
        except asyncpg.PostgresError as e:
            assert e.sqlstate == "0A000", e
        for _ in range(6):
            stmt2 = await a.prepare(sql)
            assert tuple(await stmt2.fetchrow()) == (1, 2)
        await a.close()
        await b.close()

    asyncio.run(main())


def test_ddl_by_psycopg_client_then_reexecute(tx_proxy, ddl_table):
    """psycopg (prepare_threshold=0) forgets its statements after its own ALTER (sends DEALLOCATE ALL)
    and prepares the same text again: allowed to fail once, then works."""
    p = tx_proxy(size=2)
    sql = "select * from txp_ddl"
    with connect(p, prepare_threshold=0) as a, connect(p, prepare_threshold=0) as b:
        for _ in range(6):
            for c in (a, b):
                assert c.execute(sql).fetchone() == (1,)
        a.execute("ALTER TABLE txp_ddl ADD COLUMN b int DEFAULT 2")
        for attempt in range(8):
            try:
                assert a.execute(sql).fetchone() == (1, 2)
            except errors.FeatureNotSupported as e:
                assert attempt == 0, f"attempt {attempt} after the DDL failed again: {e}"


# ---- 9-11. prepared statement names --------------------------------------------------------


@pytest.mark.parametrize("command", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_client_deallocate_all_forgets_only_its_names(tx_proxy, command):
    p = tx_proxy(size=2)
    with raw_login(p) as a, raw_login(p) as b:
        prepare_named(a, "s1", "SELECT 'a1'::text")
        prepare_named(a, "s2", "SELECT $1::int + 100")
        prepare_named(b, "s1", "SELECT 'b1'::text")  # the same name, other SQL, other client
        for i in range(5):
            assert run_named(a, "s1") == ([["a1"]], None)
            assert run_named(b, "s1") == ([["b1"]], None)
            assert run_named(a, "s2", [str(i)]) == ([[str(i + 100)]], None)
        a.simple_query("SET search_path = pg_catalog")
        msgs = a.simple_query(command)
        assert [k for k, _ in msgs] == [b"C", b"Z"], msgs
        for name in ("s1", "s2"):
            rows, err = run_named(a, name, ["1"] if name == "s2" else [])
            assert err and err["C"] == "26000", (name, rows, err)
        assert run_named(b, "s1") == ([["b1"]], None)
        prepare_named(a, "s1", "SELECT 'a2'::text")
        for _ in range(4):
            assert run_named(a, "s1") == ([["a2"]], None)
            assert run_named(b, "s1") == ([["b1"]], None)
        expected_path = '"$user", public' if command == "DISCARD ALL" else "pg_catalog"
        assert data_rows(a.simple_query("SHOW search_path")) == [[expected_path]]


def test_sql_prepare_execute_deallocate(tx_proxy):
    p = tx_proxy(size=2)
    w = Worker(p)
    w.start()
    with connect(p) as a, connect(p) as b:
        a.execute("PREPARE txp_q(int) AS SELECT $1 * 2")
        for i in range(8):
            assert a.execute(f"EXECUTE txp_q({i})").fetchone()[0] == 2 * i
            with pytest.raises(errors.InvalidSqlStatementName):
                b.execute("EXECUTE txp_q(1)")
        a.execute("DEALLOCATE txp_q")
        with pytest.raises(errors.InvalidSqlStatementName):
            a.execute("EXECUTE txp_q(1)")
        a.execute("PREPARE txp_q(int) AS SELECT $1 * 3")
        assert a.execute("EXECUTE txp_q(5)").fetchone()[0] == 15
    w.finish()


@pytest.mark.proxy_only
def test_sql_prepare_pins_and_deallocate_unpins(tx_proxy):
    p = tx_proxy(size=1, query_wait_timeout="1s")
    with connect(p) as a:
        a.execute("PREPARE txp_pin AS SELECT 42")
        time.sleep(0.1)
        assert attempt_query(p) != "ok", "a client got the only server while a SQL PREPARE lives on it"
        assert a.execute("EXECUTE txp_pin").fetchone()[0] == 42
        a.execute("DEALLOCATE txp_pin")
        time.sleep(0.1)
        assert attempt_query(p) == "ok", "the server stayed pinned after DEALLOCATE"
        assert a.execute("SELECT 1").fetchone()[0] == 1


def test_protocol_close_then_reuse_name(tx_proxy):
    p = tx_proxy(size=2)
    w = Worker(p)
    w.start()
    with raw_login(p) as a, raw_login(p) as b:
        prepare_named(b, "n", "SELECT 'b'::text")
        for i in range(10):
            prepare_named(a, "n", f"SELECT {i}::int, 'round'::text")
            assert run_named(a, "n") == ([[str(i), "round"]], None)
            assert run_named(b, "n") == ([["b"]], None)
            a.send(close_statement("n") + SYNC)
            assert [k for k, _ in a.read_until_ready()] == [b"3", b"Z"]
            rows, err = run_named(a, "n")
            assert err and err["C"] == "26000", (i, rows, err)
        # Closing a name that does not exist is not an error in Postgres.
        a.send(close_statement("never_prepared") + SYNC)
        assert [k for k, _ in a.read_until_ready()] == [b"3", b"Z"]
        # Parse + Bind + Execute + Close + Parse again in one pipeline.
        a.send(parse("n", "SELECT 'x'::text") + bind("n") + execute() + close_statement("n")
               + parse("n", "SELECT 'y'::text") + bind("n") + execute() + SYNC)
        msgs = a.read_until_ready()
        assert data_rows(msgs) == [["x"], ["y"]], msgs
        assert not any(k == b"E" for k, _ in msgs), msgs
    w.finish()


# ---- 12. an error inside a transaction ----------------------------------------------------


def test_failed_transaction_keeps_its_server_until_rollback(tx_proxy):
    p = tx_proxy(size=2)
    with connect(p) as a, connect(p) as b:
        a.execute("BEGIN")
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        a.execute("CREATE TEMP TABLE txp_in_tx (a int)")
        with pytest.raises(errors.DivisionByZero):
            a.execute("SELECT 1 / 0")
        assert a.info.transaction_status.name == "INERROR"
        for _ in range(10):
            with b.transaction():
                assert b.execute("SELECT pg_backend_pid()").fetchone()[0] != pid_a
        with pytest.raises(errors.InFailedSqlTransaction):
            a.execute("SELECT 1")
        a.execute("ROLLBACK")
        assert a.info.transaction_status.name == "IDLE"
        assert a.execute("SELECT to_regclass('txp_in_tx')").fetchone()[0] is None
        assert a.execute("SELECT 1").fetchone()[0] == 1


# ---- 13. server connections ---------------------------------------------------------------


@pytest.mark.proxy_only
def test_ten_clients_use_at_most_pool_size_servers(tx_proxy, cluster):
    p = tx_proxy(size=2)
    peak, stop = [0], threading.Event()

    def monitor():
        while not stop.is_set():
            peak[0] = max(peak[0], len(server_pids(cluster)))
            time.sleep(0.05)

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    workers = [Worker(p, pause=0.005) for _ in range(10)]
    for w in workers:
        w.start()
    time.sleep(3)
    for w in workers:
        w.finish()
    stop.set()
    mon.join(5)
    pids = set().union(*(w.pids for w in workers))
    assert len(pids) <= 2, f"{len(pids)} server backends served a pool of 2: {pids}"
    assert 1 <= peak[0] <= 2, f"{peak[0]} server sessions seen for a pool of 2"


@pytest.mark.proxy_only
def test_min_pool_size_keeps_warm_servers(tx_proxy, cluster):
    p = tx_proxy(size=3, min_pool_size=2)
    with connect(p) as c:  # the first client creates the user/database pool
        assert c.execute("SELECT 1").fetchone()[0] == 1
    n = wait_until(lambda: len(server_pids(cluster)) >= 2, 5)
    assert n, f"min_pool_size = 2 but {len(server_pids(cluster))} servers after 5 s without clients"
    time.sleep(1)
    assert 2 <= len(server_pids(cluster)) <= 3


@pytest.mark.proxy_only
def test_server_idle_timeout_closes_idle_servers(tx_proxy, cluster):
    p = tx_proxy(size=3, server_idle_timeout="1s")
    conns = [connect(p) for _ in range(3)]
    try:
        barrier = threading.Barrier(3)

        def busy(c):
            barrier.wait(5)
            c.execute("SELECT pg_sleep(0.5)")

        ths = [threading.Thread(target=busy, args=(c,)) for c in conns]
        for th in ths:
            th.start()
        for th in ths:
            th.join(10)
        assert len(server_pids(cluster)) == 3, "three concurrent clients did not open three servers"
        # Clients stay connected but idle: in transaction mode they hold no server.
        assert wait_until(lambda: len(server_pids(cluster)) == 0, 6), (
            f"{len(server_pids(cluster))} servers still open 6 s after going idle (server_idle_timeout = 1s)"
        )
        for c in conns:
            assert c.execute("SELECT 2").fetchone()[0] == 2
    finally:
        for c in conns:
            c.close()


@pytest.mark.proxy_only
def test_server_lifetime_recycles_servers(tx_proxy, cluster):
    p = tx_proxy(size=2, server_lifetime="1s")
    workers = [Worker(p, pause=0.02) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(4.5)
    for w in workers:
        w.finish()
    pids = set().union(*(w.pids for w in workers))
    assert len(pids) >= 4, f"server_lifetime = 1s but only {len(pids)} backends served 4.5 s of work"
    assert len(server_pids(cluster)) <= 2


# ---- 14. a server dies ------------------------------------------------------------------


def test_server_killed_mid_transaction(tx_proxy, cluster):
    p = tx_proxy(size=2)
    w = Worker(p, pause=0.01)
    w.start()
    a = connect(p)
    try:
        a.execute("BEGIN")
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        with cluster.admin() as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True
        assert wait_until(lambda: pid not in server_pids(cluster), 5)
        with pytest.raises(psycopg.OperationalError) as info:
            a.execute("SELECT 1")
        assert info.value.sqlstate in (None, "57P01", "08006", "08003", "08000", "08P01"), info.value
    finally:
        a.close()
    time.sleep(0.3)
    w.finish()
    for _ in range(3):
        with connect(p) as c:
            for _ in range(4):
                with c.transaction():
                    assert c.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    if not DIRECT:
        assert len(server_pids(cluster)) <= 2


@pytest.mark.proxy_only
def test_idle_pooled_servers_killed_are_replaced(tx_proxy, cluster):
    p = tx_proxy(size=2)
    with connect(p) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        old = server_pids(cluster)
        assert old
        with cluster.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (TX_USER,))
        assert wait_until(lambda: not (server_pids(cluster) & old), 5)
        time.sleep(0.3)
        for _ in range(5):
            assert c.execute("SELECT pg_backend_pid()").fetchone()[0] not in old


# ---- 15. max_client_conn ------------------------------------------------------------------


@pytest.mark.proxy_only
def test_max_client_conn(tx_proxy):
    p = tx_proxy(size=2, max_client_conn=5)
    conns = [connect(p) for _ in range(5)]
    try:
        for c in conns:
            assert c.execute("SELECT 1").fetchone()[0] == 1
        sqlstate, msg = p.login_error(TX_USER, TX_PASS)
        assert sqlstate == "53300", msg
        conns.pop().close()
        assert wait_until(lambda: attempt_query(p) == "ok", 3), "no room after a client left"
    finally:
        for c in conns:
            c.close()
    p.assert_alive()


# ---- extra: WITH HOLD cursors, a small statement LRU, pipelines ------------------------------


def test_with_hold_cursor_pins_until_closed(tx_proxy):
    p = tx_proxy(size=2)
    with connect(p) as a, connect(p) as b:
        a.execute("DECLARE txp_c CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g")
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        got = []
        for _ in range(5):
            got.append(a.execute("FETCH 1 FROM txp_c").fetchone()[0])
            assert b.execute("SELECT 1").fetchone()[0] == 1
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert got == [1, 2, 3, 4, 5]
        a.execute("CLOSE txp_c")
        # Unpinned: with b holding the other server in a transaction, a can still be served.
        with b.transaction():
            b.execute("SELECT 1")
            assert a.execute("SELECT 2").fetchone()[0] == 2


@pytest.mark.proxy_only
def test_small_statement_lru_evicts_and_reprepares(tx_proxy, cluster):
    """max_prepared_statements = 2 with 6 distinct named statements used round-robin by two clients:
    every execution is correct, and no server ever holds more than 2 of the proxy's statements."""
    p = tx_proxy(size=1, max_prepared_statements=2)
    a, b = raw_login(p), raw_login(p)
    try:
        for c, tag in ((a, "a"), (b, "b")):
            for i in range(6):
                prepare_named(c, f"{tag}{i}", f"SELECT {i} + $1::int AS v")
        for round_ in range(4):
            for c, tag in ((a, "a"), (b, "b")):
                for i in range(6):
                    rows, err = run_named(c, f"{tag}{i}", [str(round_)])
                    assert err is None, err
                    assert rows == [[str(i + round_)]], (tag, i, rows)
        with cluster.admin() as admin:
            counts = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
                (TX_USER,)).fetchone()[0]
        assert counts == 1
        # The one server holds at most 2 statements: ask it through a client.
        a.send(message(b"Q", b"SELECT count(*) FROM pg_prepared_statements\0"))
        msgs = a.read_until_ready()
        assert int(data_rows(msgs)[0][0]) <= 2, msgs
    finally:
        a.close()
        b.close()


@pytest.mark.proxy_only
def test_pipeline_with_two_syncs_and_an_error_in_the_first(tx_proxy):
    """Two Sync batches in one write; the first fails mid-way. Postgres skips to its Sync, the second batch
    runs; named statements prepared in the failed batch are re-prepared when used later."""
    p = tx_proxy(size=1)
    c = raw_login(p)
    try:
        batch1 = parse("ok1", "SELECT 1") + bind("ok1") + execute() + \
            parse("bad", "SELECT 1/0") + bind("bad") + execute() + parse("late", "SELECT 'late'") + SYNC
        batch2 = parse("two", "SELECT 2") + bind("two") + execute() + SYNC
        c.send(batch1 + batch2)
        first = c.read_until_ready()
        second = c.read_until_ready()
        kinds1 = [k for k, _ in first]
        assert b"E" in kinds1 and kinds1[-1] == b"Z", kinds1
        assert data_rows(first) == [["1"]]
        assert data_rows(second) == [["2"]]
        # "late" was skipped by the server; using it now must work (the proxy re-prepares it).
        rows, err = run_named(c, "late")
        assert err is None and rows == [["late"]], (rows, err)
    finally:
        c.close()


def test_login_needs_no_server_once_the_database_was_greeted(start_proxy):
    """Transaction mode greets later clients from the parameters a server reported (as PgBouncer does): a
    client logs in while every server is busy, sees its own application_name, and waits only at its first query."""
    p = start_proxy(pool_mode="transaction", default_pool_size=1)
    holder = p.connect(application_name="holder")
    holder.execute("BEGIN")
    holder.execute("SELECT 1")
    t0 = time.monotonic()
    late = p.connect(application_name="late-one")
    assert time.monotonic() - t0 < 2, "login waited for a server"
    assert late.info.parameter_status("application_name") == "late-one"
    assert late.info.parameter_status("server_version")
    plain = p.connect()
    assert plain.info.parameter_status("application_name") == ""
    holder.execute("COMMIT")
    assert late.execute("SHOW application_name").fetchone()[0] == "late-one"
    assert plain.execute("SHOW application_name").fetchone()[0] == ""
    # A startup value only a server can check still makes the login go through a server (and fail there).
    with pytest.raises(psycopg.OperationalError):
        p.connect(options="-c DateStyle=nonsense").close()
    for c in (holder, late, plain):
        c.close()
    p.assert_alive()


# ---- 14. idle clients park their buffers --------------------------------------------------------------


def test_parked_idle_clients_wake_up_for_queries_errors_and_shutdown(tx_proxy):
    """A client idle between transactions for a second gives back its bufferevent (Stream.park); its next
    query, a server-side error, and the shutdown notice all still reach it."""
    p = tx_proxy(size=2, log_level="debug")
    a, b, c = connect(p), connect(p), connect(p)
    for conn in (a, b, c):
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    time.sleep(1.6)
    assert p.log().count("client parked") >= 3, p.log()[-3000:]
    assert a.execute("SELECT 41 + 1").fetchone()[0] == 42
    with pytest.raises(errors.DivisionByZero):
        b.execute("SELECT 1 / 0")
    assert b.execute("SELECT 2").fetchone()[0] == 2
    b.close()  # a parked client that leaves is noticed
    time.sleep(1.6)
    p.process.send_signal(signal.SIGTERM)
    # The signal and the query race on a loaded machine: query once the proxy has begun shutting down.
    p.wait_for_log("shutting down")
    with pytest.raises(psycopg.OperationalError, match="shutting down"):
        c.execute("SELECT 1")
    assert p.process.wait(timeout=10) == 0
    a.close()
    c.close()


def test_client_logged_in_from_the_greeting_cache_parks_at_once_and_keeps_its_session(tx_proxy):
    """A login answered from the greeting cache parks as soon as the greeting is flushed (a connection storm
    then reuses each login's buffers); parking sheds the boxed per-client state, and what the client set
    or brought in its startup packet survives it."""
    p = tx_proxy(size=1, log_level="debug")  # one server: `first` and `c` take turns on it
    first = connect(p)
    assert first.execute("SELECT 1").fetchone()[0] == 1  # the greeting is cached from here on
    before = p.log().count("client parked")
    c = connect(p, application_name="parked_app")
    # Well before the janitor's parkAfter (0.25 s) would park it.
    deadline = time.monotonic() + 0.2
    while p.log().count("client parked") == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.log().count("client parked") == before + 1, p.log()[-3000:]
    assert first.execute("SHOW application_name").fetchone()[0] == ""
    assert c.execute("SHOW application_name").fetchone()[0] == "parked_app"
    c.execute("SET lock_timeout = '7s'")
    c.execute("SET application_name = 'renamed'")
    parked = p.log().count("client parked")
    time.sleep(1.6)
    assert p.log().count("client parked") > parked
    assert first.execute("SHOW application_name").fetchone()[0] == ""
    assert c.execute("SHOW lock_timeout").fetchone()[0] == "7s"
    assert c.execute("SHOW application_name").fetchone()[0] == "renamed"
    c.execute("RESET ALL")
    time.sleep(1.6)
    assert first.execute("SHOW lock_timeout").fetchone()[0] == "0"
    assert c.execute("SHOW application_name").fetchone()[0] == "parked_app"
    assert c.execute("SHOW lock_timeout").fetchone()[0] == "0"
    c.close()
    first.close()
    p.assert_alive()


def test_a_late_cancel_never_reaches_the_next_clients_statement(cluster, tx_proxy, delaying_relay):
    """Client A cancels its statement, but the cancel reaches Postgres only after that statement ended (the
    relay holds the cancel's connection 1.5 s), while B waits for the pool's one server connection. The
    server goes to B only once Postgres has taken the cancel, so B's statement is not the one cancelled
    (PgBouncer fixed this race in its pull request #717; PgDog has it open as issue #1505)."""
    p = tx_proxy(size=1, primary_port=delaying_relay.port, workers=1)
    a, b = raw_login(p), raw_login(p)
    a.send(query("SELECT 'warm'"))
    assert data_rows(a.read_until_ready()) == [["warm"]]
    delaying_relay.delay = 1.5
    a.send(query("SELECT pg_sleep(0.6), 'a'"))
    time.sleep(0.2)
    send_cancel(p, a.backend_key)
    b.send(query("SELECT pg_sleep(1.5), 'b'"))
    for conn, name in [(a, "a"), (b, "b")]:
        msgs = conn.read_until_ready()
        assert [error_fields(pl).get("C") for k, pl in msgs if k == b"E"] == [], (name, msgs)
        assert [row[1] for row in data_rows(msgs)] == [name]
    a.close()
    b.close()
    p.assert_alive()


def test_cancel_of_a_client_waiting_for_a_server_ends_its_statement_unsent(cluster, tx_proxy):
    """A pool of one, held by A's slow statement: B's INSERT waits for the server. B's cancel ends it at once
    with 57014, as Postgres ends a cancelled statement: the INSERT never runs, A's statement is untouched, and
    B's next statement runs when the server comes back (PgBouncer leaves such a client waiting: its issue
    #1222)."""
    table = "sy_cancel_waiting"
    with cluster.superuser() as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (v int)")
        c.execute(f"GRANT INSERT, SELECT ON {table} TO {TX_USER}")
    p = tx_proxy(size=1, workers=1)
    a, b = raw_login(p), raw_login(p)
    a.send(query("SELECT pg_sleep(2), 'a'"))
    time.sleep(0.3)
    b.send(query(f"INSERT INTO {table} VALUES (1)"))
    time.sleep(0.3)
    started = time.monotonic()
    send_cancel(p, b.backend_key)
    msgs = b.read_until_ready()
    assert [error_fields(pl).get("C") for k, pl in msgs if k == b"E"] == ["57014"], msgs
    assert time.monotonic() - started < 1.0, "the cancel waited for the server"
    msgs = a.read_until_ready()
    assert [k for k, _ in msgs if k == b"E"] == [], msgs
    assert [row[1] for row in data_rows(msgs)] == ["a"]
    b.send(query("SELECT 'again'"))
    assert data_rows(b.read_until_ready()) == [["again"]]
    assert cluster.sql(f"SELECT count(*) FROM {table}") == [(0,)]
    a.close()
    b.close()
    p.assert_alive()
