"""Timeouts enforced by Switchyard: statement_timeout (global, per user, per session, inside a
transaction, both pool modes) cancels on the server and gives the client 57014 while its session
stays usable and no server connection leaks; idle_transaction_timeout (25P03, rolled back) and
client_idle_timeout (57P05)."""

from __future__ import annotations

import time

import psycopg
import pytest

pytestmark = pytest.mark.proxy_only


def sleepers(cluster) -> int:
    """Backends on the primary still running pg_sleep (a cancelled statement must not keep running)."""
    return cluster.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'"
    )[0][0]


def timed_error(conn, sql):
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql)
    return e.value, time.monotonic() - t0


def wait_until(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_statement_timeout_cancels_on_the_server_and_the_session_goes_on(start_proxy, cluster, pool_mode):
    p = start_proxy(pool_mode=pool_mode, statement_timeout="1s", default_pool_size=1)
    with p.connect() as conn:
        err, took = timed_error(conn, "SELECT pg_sleep(10)")
        assert err.sqlstate == "57014", err
        assert "statement timeout" in str(err) and "switchyard" in str(err), str(err)
        assert took < 1.5, took
        # The same client goes on, on a healthy server; the cancelled statement is not running anywhere.
        assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42
        assert wait_until(lambda: sleepers(cluster) == 0)
    # Pool of one: a second client gets the (returned, healthy) server connection.
    with p.connect() as other:
        assert other.execute("SELECT 1").fetchone()[0] == 1
    servers = cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'sy_scram' AND backend_type = 'client backend'")[0][0]
    assert servers <= 1, servers
    p.assert_alive()


def test_statement_timeout_inside_a_transaction_aborts_it(start_proxy, cluster):
    p = start_proxy(pool_mode="transaction", statement_timeout="500ms")
    cluster.sql("CREATE TABLE IF NOT EXISTS sy_timeout_tx (x int)")
    cluster.sql("TRUNCATE sy_timeout_tx")
    cluster.sql("GRANT ALL ON sy_timeout_tx TO PUBLIC")
    with p.connect() as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO sy_timeout_tx VALUES (1)")
        err, took = timed_error(conn, "SELECT pg_sleep(5)")
        assert err.sqlstate == "57014" and took < 1.2, (err, took)
        err, _ = timed_error(conn, "SELECT 1")
        assert err.sqlstate == "25P02", err  # current transaction is aborted, as Postgres would say
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM sy_timeout_tx").fetchone()[0] == 0
        # A fast statement is not touched.
        assert conn.execute("SELECT pg_sleep(0.1), 1").fetchone()[1] == 1


def test_per_user_and_per_session_overrides(start_proxy_sections, cluster):
    p = start_proxy_sections(
        sections={"user.sy_md5": {"statement_timeout": "300ms"}, "database.sydb": {"statement_timeout": "5s"}},
        pool_mode="transaction", statement_timeout="0",
    )
    with p.connect("sy_md5") as conn:
        err, took = timed_error(conn, "SELECT pg_sleep(3)")
        assert err.sqlstate == "57014" and took < 1.0, (err, took)
    with p.connect() as conn:
        # The database's 5 s applies to sy_scram; the session lowers it, then RESET restores it.
        assert conn.execute("SELECT pg_sleep(0.7), 1").fetchone()[1] == 1
        conn.execute("SET switchyard.statement_timeout = '400ms'")
        err, took = timed_error(conn, "SELECT pg_sleep(3)")
        assert err.sqlstate == "57014" and took < 1.0, (err, took)
        assert "400ms" in str(err), str(err)
        conn.execute("RESET switchyard.statement_timeout")
        assert conn.execute("SELECT pg_sleep(0.7), 1").fetchone()[1] == 1
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SET switchyard.statement_timeout = 'soon'")
        assert e.value.sqlstate == "22023"
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    with p.connect() as conn:
        conn.execute("SET switchyard.statement_timeout = 200")  # bare number: milliseconds, as in Postgres
        err, took = timed_error(conn, "SELECT pg_sleep(2)")
        assert err.sqlstate == "57014" and took < 0.9, (err, took)
    p.assert_alive()


def test_session_mode_session_override(start_proxy):
    p = start_proxy(pool_mode="session")
    with p.connect() as conn:
        conn.execute("SET switchyard.statement_timeout = '300ms'")
        err, took = timed_error(conn, "SELECT pg_sleep(3)")
        assert err.sqlstate == "57014" and took < 1.0, (err, took)
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_idle_in_transaction_timeout_disconnects_and_rolls_back(start_proxy, cluster):
    p = start_proxy(pool_mode="transaction", idle_transaction_timeout="700ms")
    cluster.sql("CREATE TABLE IF NOT EXISTS sy_idle_tx (x int)")
    cluster.sql("TRUNCATE sy_idle_tx")
    cluster.sql("GRANT ALL ON sy_idle_tx TO PUBLIC")
    conn = p.connect()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO sy_idle_tx VALUES (1)")
    time.sleep(1.5)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("COMMIT")
    assert e.value.sqlstate == "25P03", e.value
    conn.close()
    assert cluster.sql("SELECT count(*) FROM sy_idle_tx")[0][0] == 0
    # A client that is idle but outside a transaction is left alone.
    with p.connect() as idle:
        time.sleep(1.2)
        assert idle.execute("SELECT 1").fetchone()[0] == 1
    p.assert_alive()


def test_idle_in_transaction_error_reaches_the_client(start_proxy):
    p = start_proxy(pool_mode="session", idle_transaction_timeout="500ms")
    conn = p.connect()
    conn.execute("BEGIN")
    time.sleep(1.2)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT 1")
    conn.close()
    assert e.value.sqlstate == "25P03" and "idle-in-transaction timeout" in str(e.value), (e.value.sqlstate, str(e.value))


def test_client_idle_timeout(start_proxy):
    p = start_proxy(pool_mode="transaction", client_idle_timeout="600ms")
    conn = p.connect()
    assert conn.execute("SELECT 1").fetchone()[0] == 1
    time.sleep(1.3)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    p.wait_for_log("client_idle_timeout")
    p.assert_alive()
