"""Shared pipeline (server_pipeline_depth, transaction mode): a client's lone autocommit read may be sent
behind another client's on a busy server connection; Postgres answers them in order and each client gets
its own reply. Checked with one server connection, so every read after the first must ride it (the
backend_pipelined_queries counter says how many did), and with clients that leave or cancel while riding.
Only shapes known to be quick take part (server_pipeline_max_latency): these tests raise the limit to 10s so
that a slow read can be ridden, and run each shape once first so that it is known."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
import urllib.request

import psycopg
import pytest
from psycopg import errors

from conftest import free_port
from pgwire import CANCEL_REQUEST_CODE, data_rows, query, terminate
from test_transaction_pooling import TX_USER, raw_login, server_pids, tx_proxy, tx_user, wait_until  # noqa: F401

pytestmark = pytest.mark.proxy_only

# About half a second on the test machines, and a read (count and generate_series are immutable).
SLOW_READ = "SELECT count(*) FROM generate_series(1, 3000000)"
SLOW_COUNT = "3000000"


def pipelined(mport: int) -> float:
    """backend_pipelined_queries_total summed over backends, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^switchyard_backend_pipelined_queries_total\{[^}]*\} (\S+)$", text, re.M))


def one_server_proxy(tx_proxy, *shapes, **kw):
    """One worker (another worker's clients have pools and servers of their own), one server connection;
    each statement of `shapes` runs once, so its duration is known."""
    mport = free_port()
    kw.setdefault("server_pipeline_max_latency", "10s")
    p = tx_proxy(size=1, metrics_listen=f"127.0.0.1:{mport}", server_pipeline_depth=4, workers=1, **kw)
    warm = raw_login(p)
    for sql in [SLOW_READ, *shapes]:
        warm.send(query(sql))
        warm.read_until_ready()
    warm.close()
    return p, mport


def started_slow_read(p):
    """A client whose slow read holds the only server connection (answered later)."""
    head = raw_login(p)
    head.send(query(SLOW_READ))
    return head


def answer(c) -> list:
    msgs = c.read_until_ready()
    assert [k for k, _ in msgs if k == b"E"] == [], msgs
    return data_rows(msgs)


def test_riders_get_their_own_replies_on_one_server(cluster, tx_proxy):
    p, mport = one_server_proxy(tx_proxy, "SELECT 0 AS n, 'rider 0'::text", "SELECT 'late'")
    head = started_slow_read(p)
    time.sleep(0.2)
    riders = [raw_login(p) for _ in range(3)]
    for i, r in enumerate(riders):
        r.send(query(f"SELECT {i} AS n, 'rider {i}'::text"))
    # A fifth client: the pipeline is full (depth 4), so it waits for the server like before.
    late = raw_login(p)
    late.send(query("SELECT 'late'"))
    assert answer(head) == [[SLOW_COUNT]]
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


def test_waiting_clients_ride_behind_the_next_lone_read(cluster, tx_proxy):
    """Three quick reads queue while a transaction holds the only server; when it ends, the first of them
    gets the server and the other two are sent behind it at once."""
    p, mport = one_server_proxy(tx_proxy, "BEGIN", "COMMIT", "SELECT 0 AS n, 'queued 0'::text")
    holder = raw_login(p)
    holder.send(query("BEGIN"))
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


def test_depth_one_turns_it_off(cluster, tx_proxy):
    mport = free_port()
    p = tx_proxy(size=1, metrics_listen=f"127.0.0.1:{mport}", server_pipeline_depth=1, workers=1,
                 server_pipeline_max_latency="10s")
    head = started_slow_read(p)
    time.sleep(0.2)
    other = raw_login(p)
    other.send(query("SELECT 'waited'"))
    assert answer(head) == [[SLOW_COUNT]]
    assert answer(other) == [["waited"]]
    assert pipelined(mport) == 0
    head.close()
    other.close()


def test_nothing_rides_while_a_server_is_free(cluster, tx_proxy):
    """Two server connections, both opened: the quick read gets the idle one (Postgres runs both at once)."""
    mport = free_port()
    p = tx_proxy(size=2, min_pool_size=2, metrics_listen=f"127.0.0.1:{mport}", server_pipeline_depth=4, workers=1,
                 server_pipeline_max_latency="10s")
    warm = raw_login(p)
    for sql in [SLOW_READ, "SELECT 'quick'"]:
        warm.send(query(sql))
        warm.read_until_ready()
    warm.close()
    assert wait_until(lambda: len(server_pids(cluster)) == 2, 5)
    head = started_slow_read(p)
    time.sleep(0.2)
    other = raw_login(p)
    other.send(query("SELECT 'quick'"))
    started = time.monotonic()
    assert answer(other) == [["quick"]]
    assert time.monotonic() - started < 0.2, "answered before the slow read ended"
    assert answer(head) == [[SLOW_COUNT]]
    assert pipelined(mport) == 0
    head.close()
    other.close()


def test_nobody_rides_behind_a_statement_known_to_be_slow(cluster, tx_proxy):
    """The default server_pipeline_max_latency (5ms): the slow read is known to take longer, so a quick read
    that comes meanwhile waits for the server instead of being sent behind it."""
    p, mport = one_server_proxy(tx_proxy, "SELECT 'quick'", server_pipeline_max_latency="5ms")
    head = started_slow_read(p)
    time.sleep(0.2)
    other = raw_login(p)
    other.send(query("SELECT 'quick'"))
    assert answer(head) == [[SLOW_COUNT]]
    assert answer(other) == [["quick"]]
    assert pipelined(mport) == 0
    head.close()
    other.close()


def test_writes_transactions_and_session_changes_never_ride(cluster, tx_proxy):
    with cluster.superuser() as c:
        c.execute("CREATE TABLE IF NOT EXISTS sy_pipeline_t (v int)")
        c.execute(f"GRANT ALL ON sy_pipeline_t TO {TX_USER}")
    p, mport = one_server_proxy(tx_proxy, "INSERT INTO sy_pipeline_t VALUES (1)", "BEGIN", "COMMIT",
                                "SET application_name = 'rider'")
    head = started_slow_read(p)
    time.sleep(0.2)
    others = [raw_login(p) for _ in range(3)]
    others[0].send(query("INSERT INTO sy_pipeline_t VALUES (1)"))
    others[1].send(query("BEGIN"))
    others[2].send(query("SET application_name = 'rider'"))
    time.sleep(0.2)
    assert pipelined(mport) == 0
    answer(head)
    answer(others[0])
    answer(others[1])
    others[1].send(query("COMMIT"))  # the transaction held the only server; the SET waited for it
    answer(others[1])
    answer(others[2])
    for c in [head, *others]:
        c.close()


def test_a_rider_that_leaves_does_not_disturb_the_others(cluster, tx_proxy):
    p, mport = one_server_proxy(tx_proxy, "SELECT 'leaver'")
    head = started_slow_read(p)
    time.sleep(0.2)
    leaver, stayer = raw_login(p), raw_login(p)
    leaver.send(query("SELECT 'leaver'"))
    stayer.send(query("SELECT 'stayer'"))
    time.sleep(0.1)
    leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaver.close()  # a reset, while its read waits behind the head's
    assert answer(head) == [[SLOW_COUNT]]
    assert answer(stayer) == [["stayer"]]
    assert pipelined(mport) == 2
    # The one server connection went back to the pool in a clean state.
    again = raw_login(p)
    again.send(query("SELECT 'again'"))
    assert answer(again) == [["again"]]
    assert len(server_pids(cluster)) == 1
    for c in [head, stayer, again]:
        c.close()


def test_the_first_client_leaving_hands_the_server_to_its_riders(cluster, tx_proxy):
    p, mport = one_server_proxy(tx_proxy, "SELECT 'rider'")
    head = started_slow_read(p)
    time.sleep(0.2)
    rider = raw_login(p)
    rider.send(query("SELECT 'rider'"))
    time.sleep(0.1)
    head.send(terminate())
    head.close()
    assert answer(rider) == [["rider"]]
    assert pipelined(mport) == 1
    rider.send(query("SELECT 'next'"))
    assert answer(rider) == [["next"]]
    assert len(server_pids(cluster)) == 1
    rider.close()


def test_cancel_of_a_waiting_rider_cancels_its_own_statement(cluster, tx_proxy):
    p, mport = one_server_proxy(tx_proxy)
    head = started_slow_read(p)
    time.sleep(0.2)
    rider = raw_login(p)
    rider.send(query(SLOW_READ))
    time.sleep(0.1)
    assert pipelined(mport) == 1
    pid, key = rider.backend_key
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(struct.pack("!iiii", 16, CANCEL_REQUEST_CODE, pid, key))
    # The head's statement is not cancelled; the rider's is, once it starts.
    assert answer(head) == [[SLOW_COUNT]]
    msgs = rider.read_until_ready()
    codes = [dict((chr(f[0]), f[1:].decode()) for f in pl.split(b"\0") if f).get("C") for k, pl in msgs if k == b"E"]
    assert codes == ["57014"], msgs
    head.close()
    rider.close()


def test_many_clients_each_get_their_own_answers(cluster, tx_proxy):
    """Sixteen clients on two server connections and two workers, each checking that every reply is its own."""
    mport = free_port()
    p = tx_proxy(size=2, metrics_listen=f"127.0.0.1:{mport}", server_pipeline_depth=4)
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
    assert failures == []
    assert pipelined(mport) > 0
    assert len(server_pids(cluster)) <= 2
