"""Shared pipeline (server_pipeline_depth, transaction mode): a client's lone autocommit read may be sent
behind another client's on a busy server connection; Postgres answers them in order and each client gets
its own reply. Checked with one server connection, so every read after the first must ride it (the
backend_pipelined_queries counter says how many did), and with clients that leave, cancel, time out or lose
the server while riding. The first client's read is held on a table lock the test takes and releases, so
nothing depends on how fast the machine is. Only shapes known to be quick take part
(server_pipeline_max_latency): these tests raise the limit to 10s and run each shape once first."""

from __future__ import annotations

import re
import signal
import socket
import struct
import threading
import time
import urllib.request

import pytest

from conftest import delaying_relay, free_port, send_cancel  # noqa: F401
from pgwire import data_rows, error_fields, parse_messages, query, terminate
from test_operations import admin, set_key
from test_transaction_pooling import TX_USER, raw_login, server_pids, tx_proxy, tx_user, wait_until  # noqa: F401

pytestmark = pytest.mark.proxy_only

LOCKED = "sy_pipeline_lock"
# Waits for the test's lock on LOCKED, then reads (a plain read: count is immutable).
HELD_READ = f"SELECT count(*) FROM {LOCKED}"
# About half a second on the test machines, and a read (count and generate_series are immutable).
SLOW_READ = "SELECT count(*) FROM generate_series(1, 3000000)"
SLOW_COUNT = "3000000"


@pytest.fixture
def lock_table(cluster, tx_user):
    with cluster.superuser() as c:
        c.execute(f"CREATE TABLE IF NOT EXISTS {LOCKED} (v int)")
        c.execute(f"GRANT SELECT ON {LOCKED} TO {TX_USER}")
    return LOCKED


class Held:
    """A superuser transaction holding ACCESS EXCLUSIVE on `table` (LOCKED) until release()."""

    def __init__(self, cluster, table: str = LOCKED):
        self.conn = cluster.superuser()
        self.conn.execute("BEGIN")
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self):
        self.conn.execute("COMMIT")
        self.conn.close()


def pipelined(mport: int) -> float:
    """backend_pipelined_queries_total summed over backends, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^switchyard_backend_pipelined_queries_total\{[^}]*\} (\S+)$", text, re.M))


def one_server_proxy(tx_proxy, *shapes, size=1, **kw):
    """One worker (another worker's clients have pools and servers of their own), `size` server connections;
    HELD_READ and each statement of `shapes` run once, so their durations are known."""
    mport = free_port()
    kw.setdefault("server_pipeline_max_latency", "10s")
    kw.setdefault("server_pipeline_depth", 4)
    p = tx_proxy(size=size, metrics_listen=f"127.0.0.1:{mport}", workers=1, **kw)
    warm = raw_login(p)
    for sql in [HELD_READ, *shapes]:
        warm.send(query(sql))
        warm.read_until_ready()
    warm.close()
    return p, mport


def held_read(p, cluster):
    """A client whose read holds a server connection until the returned lock is released."""
    held = Held(cluster)
    head = raw_login(p)
    head.send(query(HELD_READ))
    wait_until(lambda: waiting_on_lock(cluster), 5)
    return head, held


def waiting_on_lock(cluster) -> bool:
    with cluster.admin() as a:
        return bool(a.execute(
            "SELECT 1 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'", (TX_USER,)).fetchone())


def one_rider(tx_proxy, cluster, rider_sql="SELECT 'rider'", **kw):
    """One server held by a read that waits on the lock, and one client whose read rides behind it."""
    p, mport = one_server_proxy(tx_proxy, rider_sql, **kw)
    head, held = held_read(p, cluster)
    rider = raw_login(p)
    rider.send(query(rider_sql))
    wait_until(lambda: pipelined(mport) == 1, 5)
    return p, mport, head, held, rider


def answer(c) -> list:
    msgs = c.read_until_ready()
    assert [k for k, _ in msgs if k == b"E"] == [], msgs
    return data_rows(msgs)


def error_codes(c) -> list:
    return [error_fields(pl).get("C") for k, pl in c.read_until_ready() if k == b"E"]


def codes_until_closed(c) -> list:
    """SQLSTATEs of the errors a client gets before the proxy closes it."""
    data, closed = c.read_until_eof(10)
    assert closed, "the connection should have been closed"
    return [error_fields(pl).get("C") for k, pl in parse_messages(data) if k == b"E"]


def test_riders_get_their_own_replies_on_one_server(cluster, tx_proxy, lock_table):
    p, mport = one_server_proxy(tx_proxy, "SELECT 0 AS n, 'rider 0'::text", "SELECT 'late'")
    head, held = held_read(p, cluster)
    riders = [raw_login(p) for _ in range(3)]
    for i, r in enumerate(riders):
        r.send(query(f"SELECT {i} AS n, 'rider {i}'::text"))
    # A fifth client: the pipeline is full (depth 4), so it waits for the server like before.
    late = raw_login(p)
    late.send(query("SELECT 'late'"))
    wait_until(lambda: pipelined(mport) == 3, 5)
    held.release()
    assert answer(head) == [["0"]]
    for i, r in enumerate(riders):
        assert answer(r) == [[str(i), f"rider {i}"]]
    assert answer(late) == [["late"]]
    assert pipelined(mport) == 3
    assert len(server_pids(cluster)) == 1
    # Riders go on as ordinary clients afterwards (a second statement, a transaction).
    riders[0].send(query("BEGIN; SELECT 7; COMMIT"))
    assert answer(riders[0]) == [["7"]]
    for c in [head, late, *riders]:
        c.close()


def test_waiting_clients_ride_behind_the_next_lone_read(cluster, tx_proxy, lock_table):
    """Three quick reads queue while a transaction holds the only server; when it ends, the first of them
    gets the server and the other two are sent behind it at once."""
    p, mport = one_server_proxy(tx_proxy, "BEGIN", "COMMIT", "SELECT 0 AS n, 'queued 0'::text")
    holder = raw_login(p)
    holder.send(query("BEGIN"))  # answered by the proxy (defer_begin): the server is taken by the next statement
    answer(holder)
    holder.send(query("SELECT 'holder'"))
    answer(holder)
    queued = [raw_login(p) for _ in range(3)]
    for i, c in enumerate(queued):
        c.send(query(f"SELECT {i} AS n, 'queued {i}'::text"))
    time.sleep(0.2)
    assert pipelined(mport) == 0
    holder.send(query("COMMIT"))
    answer(holder)
    for i, c in enumerate(queued):
        assert answer(c) == [[str(i), f"queued {i}"]]
    assert pipelined(mport) == 2
    for c in [holder, *queued]:
        c.close()


def test_depth_one_turns_it_off(cluster, tx_proxy, lock_table):
    """The same scene twice: with depth 4 the second client rides; after RELOAD with depth 1 it waits."""
    p, mport = one_server_proxy(tx_proxy, "SELECT 'other'")
    for depth, expected in [(4, 1), (1, 1)]:
        if depth == 1:
            set_key(p, "server_pipeline_depth", 1)
            p.process.send_signal(signal.SIGHUP)
            p.wait_for_log("config reloaded")
        head, held = held_read(p, cluster)
        other = raw_login(p)
        other.send(query("SELECT 'other'"))
        time.sleep(0.3)
        held.release()
        assert answer(head) == [["0"]]
        assert answer(other) == [["other"]]
        assert pipelined(mport) == expected
        head.close()
        other.close()


def test_nothing_rides_while_a_server_is_free(cluster, tx_proxy, lock_table):
    """Two server connections, both open: the quick read gets the idle one (Postgres runs both at once)."""
    p, mport = one_server_proxy(tx_proxy, "SELECT 'quick'", size=2, min_pool_size=2)
    assert wait_until(lambda: len(server_pids(cluster)) == 2, 5)
    head, held = held_read(p, cluster)
    other = raw_login(p)
    other.send(query("SELECT 'quick'"))
    assert answer(other) == [["quick"]], "answered while the first read still waits"
    held.release()
    assert answer(head) == [["0"]]
    assert pipelined(mport) == 0
    head.close()
    other.close()


def test_nobody_rides_behind_a_statement_known_to_be_slow(cluster, tx_proxy, lock_table):
    """The default server_pipeline_max_latency (5ms): the slow read is known to take longer, so a quick read
    that comes meanwhile waits for the server instead of being sent behind it."""
    p, mport = one_server_proxy(tx_proxy, SLOW_READ, "SELECT 'quick'", server_pipeline_max_latency="5ms")
    head = raw_login(p)
    head.send(query(SLOW_READ))
    time.sleep(0.1)
    other = raw_login(p)
    other.send(query("SELECT 'quick'"))
    assert answer(head) == [[SLOW_COUNT]]
    assert answer(other) == [["quick"]]
    assert pipelined(mport) == 0
    head.close()
    other.close()


def test_writes_transactions_and_session_changes_never_ride(cluster, tx_proxy, lock_table):
    with cluster.superuser() as c:
        c.execute("CREATE TABLE IF NOT EXISTS sy_pipeline_t (v int)")
        c.execute(f"GRANT ALL ON sy_pipeline_t TO {TX_USER}")
    p, mport = one_server_proxy(tx_proxy, "INSERT INTO sy_pipeline_t VALUES (1)", "BEGIN", "COMMIT",
                                "SET application_name = 'rider'", "SELECT 'control'")
    head, held = held_read(p, cluster)
    control = raw_login(p)  # a plain read does ride: the scene is right for riding
    control.send(query("SELECT 'control'"))
    assert wait_until(lambda: pipelined(mport) == 1, 5)
    others = [raw_login(p) for _ in range(3)]
    others[0].send(query("INSERT INTO sy_pipeline_t VALUES (1)"))
    others[1].send(query("BEGIN"))
    others[2].send(query("SET application_name = 'rider'"))
    time.sleep(0.2)
    assert pipelined(mport) == 1
    held.release()
    answer(head)
    answer(control)
    answer(others[0])
    answer(others[1])
    others[1].send(query("COMMIT"))  # the transaction held the only server; the SET waited for it
    answer(others[1])
    answer(others[2])
    assert pipelined(mport) == 1
    for c in [head, control, *others]:
        c.close()


def test_a_newcomer_does_not_overtake_clients_already_waiting(cluster, tx_proxy, lock_table):
    """A transaction waits for the only server: a quick read that comes after it queues behind it."""
    p, mport = one_server_proxy(tx_proxy, "BEGIN", "COMMIT", "SELECT 'newcomer'")
    head, held = held_read(p, cluster)
    waiter = raw_login(p)
    waiter.send(query("BEGIN"))  # answered by the proxy (defer_begin); its first statement waits for the server
    answer(waiter)
    waiter.send(query("SELECT 'waiter'"))
    time.sleep(0.1)
    newcomer = raw_login(p)
    newcomer.send(query("SELECT 'newcomer'"))
    time.sleep(0.2)
    assert pipelined(mport) == 0
    held.release()
    assert answer(head) == [["0"]]
    assert answer(waiter) == [["waiter"]]
    waiter.send(query("COMMIT"))
    answer(waiter)
    assert answer(newcomer) == [["newcomer"]]
    for c in [head, waiter, newcomer]:
        c.close()


def test_a_rider_that_leaves_does_not_disturb_the_others(cluster, tx_proxy, lock_table):
    p, mport = one_server_proxy(tx_proxy, "SELECT 'leaver'")
    head, held = held_read(p, cluster)
    leaver, stayer = raw_login(p), raw_login(p)
    leaver.send(query("SELECT 'leaver'"))
    stayer.send(query("SELECT 'stayer'"))
    wait_until(lambda: pipelined(mport) == 2, 5)
    leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaver.close()  # a reset, while its read waits behind the head's
    time.sleep(0.1)
    held.release()
    assert answer(head) == [["0"]]
    assert answer(stayer) == [["stayer"]]
    # The one server connection went back to the pool in a clean state.
    again = raw_login(p)
    again.send(query("SELECT 'again'"))
    assert answer(again) == [["again"]]
    assert len(server_pids(cluster)) == 1
    for c in [head, stayer, again]:
        c.close()


def test_the_first_client_leaving_hands_the_server_to_its_riders(cluster, tx_proxy, lock_table):
    p, mport, head, held, rider = one_rider(tx_proxy, cluster)
    head.send(terminate())
    head.close()
    time.sleep(0.1)
    held.release()
    assert answer(rider) == [["rider"]]
    rider.send(query("SELECT 'next'"))
    assert answer(rider) == [["next"]]
    assert len(server_pids(cluster)) == 1
    rider.close()


def test_cancel_of_a_waiting_rider_cancels_its_own_statement(cluster, tx_proxy, lock_table):
    p, mport, head, held, rider = one_rider(tx_proxy, cluster, SLOW_READ)
    send_cancel(p, rider.backend_key)
    time.sleep(0.2)
    held.release()
    # The head's statement is not cancelled; the rider's is, once it starts.
    assert answer(head) == [["0"]]
    assert error_codes(rider) == ["57014"]
    head.close()
    rider.close()


def test_a_late_cancel_for_the_first_client_does_not_fail_a_riders_statement(cluster, tx_proxy, lock_table, delaying_relay):
    """The first client cancels its read while a rider waits behind it, and the cancel reaches Postgres only
    after that read ended (the relay holds the cancel's connection 1.5 s): by then the rider's statement runs
    (it waits on a second lock), and Postgres cancels it. That error was never the rider's: the proxy hides
    it and runs the rider's read again, and the rider gets its rows."""
    second = LOCKED + "_2"
    with cluster.superuser() as c:
        c.execute(f"CREATE TABLE IF NOT EXISTS {second} (v int)")
        c.execute(f"GRANT SELECT ON {second} TO {TX_USER}")
    rider_read = f"SELECT count(*) FROM {second}"
    p, mport = one_server_proxy(tx_proxy, rider_read, primary_port=delaying_relay.port)
    held_second = Held(cluster, second)
    head, held = held_read(p, cluster)
    rider = raw_login(p)
    rider.send(query(rider_read))
    wait_until(lambda: pipelined(mport) == 1, 5)
    delaying_relay.delay = 1.5
    send_cancel(p, head.backend_key)
    time.sleep(0.2)
    held.release()
    assert answer(head) == [["0"]]
    time.sleep(2.0)
    held_second.release()
    assert answer(rider) == [["0"]]
    assert "running it again" in p.wait_for_log("running it again")
    for c in [head, rider]:
        c.close()


def test_a_rider_waits_at_most_query_wait_timeout(cluster, tx_proxy, lock_table):
    """Its statement cannot start while the first one waits on the lock: the rider gets the error of a client
    that waited too long for a server, the first client its answer when the lock goes."""
    p, mport, head, held, rider = one_rider(tx_proxy, cluster, query_wait_timeout="1s")
    assert codes_until_closed(rider) == ["08006"]
    held.release()
    assert answer(head) == [["0"]]
    again = raw_login(p)
    again.send(query("SELECT 'rider'"))
    assert answer(again) == [["rider"]]
    for c in [head, rider, again]:
        c.close()


def outstanding(p) -> int:
    """SHOW BACKENDS' outstanding column for the primary (least_outstanding load balancing counts it)."""
    with admin(p) as a:
        cur = a.execute("SHOW BACKENDS")
        names = [d.name for d in cur.description]
        rows = {r[0]: r for r in cur.fetchall()}
    return int(rows["primary"][names.index("outstanding")])


def test_outstanding_counts_the_riders_statements(cluster, tx_proxy, lock_table):
    """One server connection carries the first client's read and two riders' reads: the backend has three
    statements in flight, not one; each answered statement leaves the count."""
    p, mport = one_server_proxy(tx_proxy, "SELECT 'rider'")
    head, held = held_read(p, cluster)
    assert outstanding(p) == 1
    riders = [raw_login(p) for _ in range(2)]
    for r in riders:
        r.send(query("SELECT 'rider'"))
    wait_until(lambda: pipelined(mport) == 2, 5)
    assert outstanding(p) == 3
    held.release()
    assert answer(head) == [["0"]]
    for r in riders:
        assert answer(r) == [["rider"]]
    assert wait_until(lambda: outstanding(p) == 0, 5), outstanding(p)
    for c in [head, *riders]:
        c.close()


def test_the_statement_of_a_first_client_that_left_still_times_out(cluster, tx_proxy, lock_table):
    """The first client leaves while its read waits on the lock and a rider waits behind it: nobody is there
    to time its statement, yet statement_timeout still cancels it on the server, so the rider is answered
    while the lock is still held."""
    p, mport, head, held, rider = one_rider(tx_proxy, cluster, statement_timeout="1s", query_wait_timeout="30s")
    head.send(terminate())
    head.close()
    started = time.monotonic()
    assert answer(rider) == [["rider"]]
    assert time.monotonic() - started < 10
    held.release()
    rider.send(query("SELECT 'next'"))
    assert answer(rider) == [["next"]]
    assert len(server_pids(cluster)) == 1, "the server connection was kept"
    rider.close()
    p.assert_alive()


def test_statement_timeout_of_the_first_client_lets_the_riders_run(cluster, tx_proxy, lock_table):
    p, mport, head, held, rider = one_rider(tx_proxy, cluster, statement_timeout="1s")
    assert error_codes(head) == ["57014"]
    assert answer(rider) == [["rider"]]
    held.release()
    for c in [head, rider]:
        c.close()


def test_losing_the_server_fails_the_riders_cleanly(cluster, tx_proxy, lock_table):
    p, mport, head, held, rider = one_rider(tx_proxy, cluster)
    with cluster.superuser() as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (TX_USER,))
    assert codes_until_closed(head)[-1:] == ["08006"]
    assert codes_until_closed(rider) == ["08006"]
    held.release()
    again = raw_login(p)
    again.send(query("SELECT 'rider'"))
    assert answer(again) == [["rider"]]
    p.assert_alive()
    for c in [head, rider, again]:
        c.close()


def test_many_clients_each_get_their_own_answers(cluster, tx_proxy):
    """Sixteen clients on two server connections and two workers, each checking that every reply is its own."""
    mport = free_port()
    p = tx_proxy(size=2, metrics_listen=f"127.0.0.1:{mport}", server_pipeline_depth=4, workers=2)
    failures: list[str] = []

    def client(n: int):
        try:
            c = raw_login(p)
            for i in range(150):
                c.send(query(f"SELECT {n}, {i}"))
                rows = answer(c)
                if rows != [[str(n), str(i)]]:
                    failures.append(f"client {n} query {i}: {rows}")
                    return
            c.close()
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            failures.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients still running after 120 s"
    assert failures == []
    assert pipelined(mport) > 0
    assert len(server_pids(cluster)) <= 2
