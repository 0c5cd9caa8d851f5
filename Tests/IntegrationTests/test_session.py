"""Session behaviour through the proxy: SET persists, notices, LISTEN/NOTIFY, pipelines with an
error in the middle, the FunctionCall message, and query cancellation."""

import struct

import pytest
from psycopg import errors

from conftest import run_and_cancel
from pgwire import RawConn, data_rows, error_fields, function_call


def test_set_survives_across_statements(proxy):
    with proxy.connect() as conn:
        conn.execute("SET search_path TO pg_catalog, public")
        conn.execute("SET application_name = 'sy-session-test'")
        conn.execute("SELECT 1")
        assert conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog, public"
        assert conn.execute("SHOW application_name").fetchone()[0] == "sy-session-test"
        conn.execute("BEGIN")
        conn.execute("SET LOCAL statement_timeout = '7s'")
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "7s"
        conn.execute("COMMIT")
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_startup_parameters_reach_server(proxy):
    with proxy.connect(application_name="sy-startup-app") as conn:
        assert conn.execute("SHOW application_name").fetchone()[0] == "sy-startup-app"


def test_notice(proxy):
    notices = []
    with proxy.connect() as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("DO $$ BEGIN RAISE NOTICE 'hi'; END $$")
        assert conn.execute("SELECT 7").fetchone()[0] == 7
    assert notices == ["hi"]


def test_listen_notify(proxy):
    with proxy.connect() as listener, proxy.connect() as sender:
        listener.execute("LISTEN sy_chan")
        sender.execute("NOTIFY sy_chan, 'payload-1'")
        sender.execute("SELECT pg_notify('sy_chan', 'payload-2')")
        got = []
        for n in listener.notifies(timeout=5, stop_after=2):
            got.append((n.channel, n.payload))
        assert got == [("sy_chan", "payload-1"), ("sy_chan", "payload-2")]


def test_pipeline_error_mid_pipeline(proxy):
    with proxy.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS pipe_t")
        conn.execute("CREATE TABLE pipe_t(a int)")
        with pytest.raises(errors.DivisionByZero):
            with conn.pipeline():
                conn.execute("INSERT INTO pipe_t VALUES (%s)", (1,))
                conn.execute("SELECT 1 / %s", (0,))
                conn.execute("INSERT INTO pipe_t VALUES (%s)", (2,))
        # One Sync closes the batch: it ran as one implicit transaction, so the first INSERT was
        # rolled back with it and the third statement was skipped (as with Postgres directly).
        rows = conn.execute("SELECT a FROM pipe_t ORDER BY a").fetchall()
        assert rows == [], rows
        # The connection is usable and the protocol in sync afterwards.
        with conn.pipeline():
            cur1 = conn.execute("SELECT %s::int", (41,))
            cur2 = conn.execute("SELECT %s::text", ("x",))
        assert cur1.fetchone()[0] == 41 and cur2.fetchone()[0] == "x"
        assert conn.execute("SELECT 42").fetchone()[0] == 42


def test_prepared_statements_extended(proxy):
    with proxy.connect() as conn:
        for i in range(10):
            assert conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1


def test_function_call_message(proxy, cluster):
    """FunctionCall ('F') -> FunctionCallResponse ('V'), ReadyForQuery."""
    with RawConn(proxy.host, proxy.port) as c:
        c.login("sy_scram", "scram-pass")
        oid = int(data_rows(c.simple_query("SELECT 'int4pl'::regproc::oid"))[0][0])
        c.send(function_call(oid, [b"2", b"40"]))
        msgs = c.read_until_ready()
        kinds = [k for k, _ in msgs]
        assert kinds == [b"V", b"Z"], msgs
        payload = msgs[0][1]
        (ln,) = struct.unpack("!i", payload[:4])
        assert payload[4 : 4 + ln] == b"42"
        # An error from a function call keeps the session usable.
        c.send(function_call(oid, [b"2147483647", b"1"]))
        msgs = c.read_until_ready()
        assert msgs[0][0] == b"E" and error_fields(msgs[0][1])["C"] == "22003", msgs
        assert data_rows(c.simple_query("SELECT 5"))[0][0] == "5"


def test_sql_function_call(proxy):
    with proxy.connect() as conn:
        conn.execute("CREATE OR REPLACE FUNCTION sy_add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'")
        assert conn.execute("SELECT sy_add(%s, %s)", (20, 22)).fetchone()[0] == 42


def test_cancel_arrives_within_a_second(proxy):
    with proxy.connect() as conn:
        outcome, waited = run_and_cancel(conn)
        assert outcome == "57014", outcome
        assert waited < 1.0, f"cancel took {waited:.2f}s"
        # The session is still usable after the cancel.
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_cancel_with_wrong_key_is_ignored(proxy):
    """A CancelRequest with a made-up key must not cancel anything (and not crash the proxy)."""
    with proxy.connect() as conn:
        with RawConn(proxy.host, proxy.port) as c:
            c.send(struct.pack("!iiii", 16, 80877102, 12345, 67890))
            c.read_until_eof(timeout=2)
        assert conn.execute("SELECT pg_sleep(0.3), 1").fetchone()[1] == 1
    if proxy.process:
        proxy.assert_alive()
