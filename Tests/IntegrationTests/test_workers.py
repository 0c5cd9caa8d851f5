"""Several event loops in one process (`workers = 2`): clients are spread over the workers, and what must hold
for the whole process does: pool_size and max_client_conn, cancel requests that arrive at another worker,
statistics and admin views that count every worker, PAUSE, RELOAD and shutdown reaching every worker."""
import os
import signal
import threading
import time

import psycopg
import pytest
from psycopg import errors

from conftest import PASSWORDS, run_and_cancel

pytestmark = pytest.mark.proxy_only

USER = "sy_scram"


def worker_of(conn) -> int:
    """The worker a client is on: the low byte of the proxy-issued BackendKeyData process id."""
    return conn.info.backend_pid & 0xFF


def admin(p):
    return psycopg.connect(host=p.host, port=p.port, user="sy_admin", password=PASSWORDS["sy_admin"],
                           dbname="switchyard", autocommit=True, sslmode="disable")


def show(p, what):
    with admin(p) as a:
        cur = a.execute(f"SHOW {what}")
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def server_sessions(cluster, user=USER) -> int:
    with cluster.admin() as a:
        return a.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
                         (user,)).fetchone()[0]


@pytest.fixture
def two_workers(start_proxy):
    def start(**kw):
        settings = dict(workers=2, pool_mode="transaction", default_pool_size=2)
        settings.update(kw)
        return start_proxy(**settings)
    return start


def test_clients_are_spread_over_both_workers(two_workers):
    p = two_workers()
    conns = [p.connect() for _ in range(4)]
    try:
        assert {worker_of(c) for c in conns} == {0, 1}
        for c in conns:
            assert c.execute("SELECT 1").fetchone()[0] == 1
        # SHOW CLIENTS lists the clients of both workers (plus the admin's own connection).
        rows = [r for r in show(p, "CLIENTS") if r["database"] == "sydb"]
        assert len(rows) == 4, rows
    finally:
        for c in conns:
            c.close()
    assert "workers=2" in p.log()
    p.assert_alive()


def test_pool_size_holds_across_workers(two_workers, cluster):
    with cluster.admin() as a:
        a.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (USER,))
    p = two_workers(default_pool_size=2)
    peak, stop, errs, done = [0], threading.Event(), [], []

    def monitor():
        while not stop.is_set():
            peak[0] = max(peak[0], server_sessions(cluster))
            time.sleep(0.02)

    def client(i):
        try:
            with p.connect() as c:
                for _ in range(5):
                    c.execute("SELECT pg_sleep(0.02)")
                done.append(worker_of(c))
        except Exception as e:  # noqa: BLE001 - asserted below
            errs.append(repr(e))

    mon = threading.Thread(target=monitor)
    mon.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    mon.join()
    assert not errs, errs
    assert sorted(set(done)) == [0, 1], done
    assert 1 <= peak[0] <= 2, f"{peak[0]} server sessions for pool_size = 2 over two workers"
    pools = [r for r in show(p, "POOLS") if r["database"] == "sydb"]
    assert sum(r["sv_active"] + r["sv_idle"] + r["sv_login"] for r in pools) <= 2, pools
    p.assert_alive()


def test_max_client_conn_counts_every_worker(two_workers):
    p = two_workers(max_client_conn=3)
    held = [p.connect() for _ in range(3)]
    try:
        assert {worker_of(c) for c in held} == {0, 1}
        for _ in range(2):  # whichever worker takes it, the fourth client is one too many
            sqlstate, message = p.login_error()
            assert sqlstate == "53300", (sqlstate, message)
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_cancel_reaches_a_client_on_another_worker(two_workers):
    p = two_workers()
    for _ in range(2):  # consecutive connections alternate workers: at least one cancel crosses
        with p.connect() as conn:
            outcome, waited = run_and_cancel(conn, delay=0.4)
            assert outcome == "57014", outcome
            assert waited < 2
            assert conn.execute("SELECT 2").fetchone()[0] == 2
    p.wait_for_log("cancel request passed to its worker")
    p.assert_alive()


def test_stats_count_statements_of_every_worker(two_workers):
    p = two_workers()
    marker = "sy_workers_stats"
    conns = [p.connect() for _ in range(4)]
    try:
        assert {worker_of(c) for c in conns} == {0, 1}
        for i, c in enumerate(conns):
            for _ in range(i + 1):  # 1 + 2 + 3 + 4 = 10 statements
                c.execute(f"SELECT 1 AS {marker}")
    finally:
        for c in conns:
            c.close()
    rows = [r for r in show(p, "QUERIES") if marker in r["query"]]
    assert len(rows) == 1, rows
    assert rows[0]["calls"] == 10, rows


def test_pause_waits_for_a_transaction_on_the_other_worker(two_workers):
    p = two_workers()
    holder = p.connect()
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")
        with admin(p) as a:
            result = {}

            def pause():
                a.execute("PAUSE sydb")
                result["t"] = time.monotonic()

            th = threading.Thread(target=pause)
            th.start()
            time.sleep(0.6)
            assert th.is_alive(), "PAUSE answered while a transaction still held a server"
            t_commit = time.monotonic()
            holder.execute("COMMIT")
            th.join(5)
            assert not th.is_alive() and result["t"] >= t_commit
            a.execute("RESUME sydb")
        assert holder.execute("SELECT 3").fetchone()[0] == 3
    finally:
        holder.close()


def test_reload_reaches_every_worker(two_workers):
    p = two_workers(statement_timeout="0")
    text = p.config_path.read_text().replace("statement_timeout = 0", "statement_timeout = 300ms")
    p.config_path.write_text(text)
    os.kill(p.pid, signal.SIGHUP)
    p.wait_for_log("config reloaded")
    time.sleep(0.3)
    conns = [p.connect() for _ in range(2)]
    try:
        assert {worker_of(c) for c in conns} == {0, 1}
        for c in conns:
            with pytest.raises(errors.QueryCanceled):
                c.execute("SELECT pg_sleep(3)")
            assert c.execute("SELECT 4").fetchone()[0] == 4
    finally:
        for c in conns:
            c.close()


def test_sigterm_stops_every_worker(two_workers):
    p = two_workers()
    conns = [p.connect() for _ in range(2)]
    assert {worker_of(c) for c in conns} == {0, 1}
    p.process.send_signal(signal.SIGTERM)
    assert p.process.wait(timeout=10) == 0
    for c in conns:
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
        c.close()
