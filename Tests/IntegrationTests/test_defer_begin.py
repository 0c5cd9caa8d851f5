"""defer_begin (transaction mode): a plain BEGIN is answered by the proxy and sent to the server with the
client's next statement. The transaction takes no server before its first statement, and everything in it
is still one transaction on one server; options, errors, timeouts, shutdown and the extended protocol
behave as without it."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import psycopg
import pytest
from psycopg import errors

from conftest import PASSWORDS, in_thread

pytestmark = pytest.mark.proxy_only


@pytest.fixture
def table(cluster):
    cluster.sql("CREATE TABLE IF NOT EXISTS sy_defer (x int)")
    cluster.sql("TRUNCATE sy_defer")
    cluster.sql("GRANT ALL ON sy_defer TO PUBLIC")
    return "sy_defer"


def proxy(start_proxy, **kw):
    settings = dict(pool_mode="transaction", default_pool_size=1, query_wait_timeout="3s")
    settings.update(kw)
    return start_proxy(**settings)


@pytest.mark.parametrize("defer", ["on", "off"])
def test_begun_transaction_holds_no_server_until_its_first_statement(start_proxy, table, defer):
    p = proxy(start_proxy, defer_begin=defer, query_wait_timeout="10s")
    a, b = p.connect(), p.connect()
    a.execute("BEGIN")
    assert a.info.transaction_status.name == "INTRANS"
    # The pool's one server: free while A has only begun (defer on), A's from BEGIN on (defer off).
    t, box = in_thread(lambda: [b.execute("SELECT 1").fetchone()[0] for _ in range(5)])
    t.join(2)
    if defer == "on":
        assert box.get("value") == [1] * 5, box
    else:
        assert "value" not in box, "with defer_begin = off the BEGIN holds the only server"
    a.execute(f"INSERT INTO {table} VALUES (1)")
    a.execute("COMMIT")
    t.join(5)
    assert box.get("value") == [1] * 5, box
    assert p.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
    a.close()
    b.close()


def test_statements_after_a_held_begin_are_one_transaction(start_proxy, table):
    p = proxy(start_proxy, default_pool_size=2)
    c = p.connect()
    c.execute("begin transaction;")
    xid = c.execute("SELECT txid_current()").fetchone()[0]
    c.execute(f"INSERT INTO {table} VALUES (1)")
    assert c.execute("SELECT txid_current()").fetchone()[0] == xid
    assert c.info.transaction_status.name == "INTRANS"
    c.execute("ROLLBACK")
    assert c.info.transaction_status.name == "IDLE"
    assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    cur = c.execute("START TRANSACTION")
    assert cur.statusmessage == "START TRANSACTION"
    c.execute(f"INSERT INTO {table} VALUES (2)")
    c.execute("COMMIT")
    assert c.execute(f"SELECT array_agg(x) FROM {table}").fetchone()[0] == [2]
    # BEGIN then COMMIT straight away: an empty transaction, answered as Postgres answers it.
    assert c.execute("BEGIN").statusmessage == "BEGIN"
    assert c.execute("COMMIT").statusmessage == "COMMIT"
    assert c.info.transaction_status.name == "IDLE"
    c.close()


def test_begin_with_options_or_errors_goes_to_the_server_at_once(start_proxy):
    p = proxy(start_proxy)
    c = p.connect()
    c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
    assert c.execute("SHOW transaction_isolation").fetchone()[0] == "serializable"
    c.execute("COMMIT")
    with pytest.raises(errors.SyntaxError):
        c.execute("BEGIN ISOLATION LEVEL sometimes")
    assert c.info.transaction_status.name == "IDLE"
    assert c.execute("SELECT 1").fetchone()[0] == 1
    c.close()


def test_held_begin_then_extended_protocol(start_proxy, table):
    """lib/pq, psycopg and asyncpg send BEGIN as a simple Query and the statements as Parse/Bind/Execute."""
    p = proxy(start_proxy, default_pool_size=2)
    with p.connect(autocommit=False) as c:  # psycopg sends BEGIN before the first statement
        c.execute(f"INSERT INTO {table} VALUES (%s)", (7,))
        c.execute(f"INSERT INTO {table} VALUES (%s)", (8,), prepare=True)
        assert c.execute(f"SELECT sum(x) FROM {table} WHERE x > %s", (0,)).fetchone()[0] == 15
        c.rollback()
        c.execute(f"INSERT INTO {table} VALUES (%s)", (9,))
        c.commit()

    async def with_asyncpg():
        conn = await asyncpg.connect(host=p.host, port=p.port, user="sy_scram", password=PASSWORDS["sy_scram"],
                                     database="sydb", ssl=False, statement_cache_size=0)
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES ($1)", 10)
                assert await conn.fetchval(f"SELECT sum(x) FROM {table} WHERE x > $1", 0) == 19
            with pytest.raises(asyncpg.DivisionByZeroError):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES ($1)", 11)
                    await conn.fetchval("SELECT 1 / $1::int", 0)
            return await conn.fetchval(f"SELECT array_agg(x ORDER BY x) FROM {table}")
        finally:
            await conn.close()

    assert asyncio.run(with_asyncpg()) == [9, 10]


def test_held_begin_routes_to_the_primary(start_proxy, cluster):
    p = start_proxy(pool_mode="transaction", replica=True)
    c = p.connect()
    # A read-only transaction may go to the replica (before this client writes: read-your-writes), a
    # plain one never, whatever its first statement.
    c.execute("BEGIN READ ONLY")
    assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    c.execute("COMMIT")
    for _ in range(3):
        c.execute("BEGIN")
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        c.execute("COMMIT")
    c.close()


def test_read_your_writes_position_query_rides_behind_the_commit(start_proxy, cluster, table):
    """With replicas, a write transaction's COMMIT carries the WAL position query in the same write (no
    round trip of its own); a ROLLBACK or a transaction left by an error still gets its position; a
    transaction of reads gets none."""
    p = start_proxy(pool_mode="transaction", replica=True, read_your_writes="lsn", log_level="debug")
    c = p.connect()
    c.execute("BEGIN")
    c.execute(f"INSERT INTO {table} VALUES (1)")
    c.execute("COMMIT")
    assert p.log().count("WAL position query sent behind COMMIT") == 1
    assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
    c.execute("BEGIN")
    c.execute(f"INSERT INTO {table} VALUES (2)")
    c.execute("ROLLBACK")
    with pytest.raises(errors.DivisionByZero):
        c.execute("BEGIN")
        c.execute(f"INSERT INTO {table} VALUES (1 / 0)")
    c.execute("END")  # ends the failed transaction (a rollback), position query behind it
    assert c.info.transaction_status.name == "IDLE"
    assert p.log().count("WAL position query sent behind COMMIT") == 2
    c.execute("BEGIN")
    c.execute(f"SELECT count(*) FROM {table}")
    c.execute("SET LOCAL work_mem = '2MB'")
    c.execute("COMMIT")
    assert p.log().count("WAL position query sent behind COMMIT") == 2, "a transaction of reads learns no position"
    for _ in range(3):
        assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
    c.close()
    p.assert_alive()


def test_idle_transaction_timeout_applies_to_a_held_begin(start_proxy):
    p = proxy(start_proxy, idle_transaction_timeout="1s")
    c = p.connect()
    c.execute("BEGIN")
    time.sleep(2)
    with pytest.raises(psycopg.Error) as info:
        c.execute("SELECT 1")
    assert info.value.sqlstate == "25P03", info.value
    c.close()
    assert p.connect().execute("SELECT 1").fetchone()[0] == 1


def test_sigterm_lets_a_held_transaction_finish(start_proxy, cluster, table):
    p = proxy(start_proxy, shutdown_timeout="10s")
    tx = p.connect()
    tx.execute("BEGIN")
    p.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.process.poll() is None, "the proxy waits for the transaction the client began"
    tx.execute(f"INSERT INTO {table} VALUES (3)")
    tx.execute("COMMIT")
    assert p.process.wait(timeout=5) == 0
    assert cluster.sql(f"SELECT count(*) FROM {table}")[0][0] == 1
    tx.close()


def test_leaving_needs_no_server(start_proxy, cluster):
    """A client that closes between transactions (or after a held BEGIN) leaves at once, even while
    every server is taken."""
    p = proxy(start_proxy)
    busy = p.connect()
    busy.execute("BEGIN")
    busy.execute("SELECT 1")  # holds the pool's only server
    for n, held in enumerate((False, True), start=1):
        c = p.connect()
        if held:
            c.execute("BEGIN")
        c.close()
        deadline = time.monotonic() + 2
        while p.log().count("client terminated") < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.log().count("client terminated") == n, p.log()[-3000:]
    assert "query_wait_timeout" not in p.log()
    busy.execute("COMMIT")
    busy.close()
