"""Session pooling: clients beyond default_pool_size wait for a server connection; server
connections are reused; server_reset_query (DISCARD ALL) keeps one client's SETs from the next."""

import threading
import time

import pytest

from conftest import PASSWORDS

pytestmark = pytest.mark.proxy_only

POOL_USER = "sy_pool"
POOL_PASS = "pool-pass"


@pytest.fixture
def pool_user(cluster):
    """A role only this module uses, so pg_stat_activity counts only our pool's connections."""
    cluster.ensure_role(POOL_USER, POOL_PASS)
    with cluster.superuser() as c:
        c.execute(f"GRANT ALL ON SCHEMA public TO {POOL_USER}")
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (POOL_USER,))
    return POOL_USER


def server_sessions(cluster) -> int:
    with cluster.admin() as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND backend_type = 'client backend'",
            (POOL_USER,),
        ).fetchone()[0]


def test_clients_beyond_pool_size_wait_and_complete(start_proxy, cluster, pool_user):
    p = start_proxy(default_pool_size=2, users=dict(PASSWORDS, **{POOL_USER: POOL_PASS}))
    results, errors, peak = [], [], [0]
    stop = threading.Event()

    def monitor():
        while not stop.is_set():
            peak[0] = max(peak[0], server_sessions(cluster))
            time.sleep(0.05)

    def client(i):
        try:
            with p.connect(POOL_USER, POOL_PASS) as conn:
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                conn.execute("SELECT pg_sleep(0.4)")
                results.append((i, pid))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append((i, repr(e)))

    mon = threading.Thread(target=monitor)
    mon.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    stop.set()
    mon.join()
    assert not errors, errors
    assert len(results) == 4
    pids = {pid for _, pid in results}
    assert len(pids) <= 2, f"{len(pids)} server backends for a pool of 2: {results}"
    assert peak[0] <= 2, f"{peak[0]} server sessions seen for a pool of 2"
    assert elapsed >= 0.75, f"4 clients x 0.4 s on 2 connections finished in {elapsed:.2f}s: nobody waited?"
    p.assert_alive()


def test_server_connection_reused_and_reset(start_proxy, cluster, pool_user):
    p = start_proxy(default_pool_size=1, users=dict(PASSWORDS, **{POOL_USER: POOL_PASS}))
    with p.connect(POOL_USER, POOL_PASS) as a:
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        a.execute("SET search_path TO pg_catalog")
        a.execute("SET application_name = 'leaky'")
        a.execute("PREPARE leaky_stmt AS SELECT 1")
        a.execute("CREATE TEMP TABLE leaky_tmp(a int)")
    time.sleep(0.2)
    with p.connect(POOL_USER, POOL_PASS) as b:
        pid_b = b.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pid_b == pid_a, "the server connection was not reused"
        assert b.execute("SHOW search_path").fetchone()[0] == '"$user", public'
        assert b.execute("SHOW application_name").fetchone()[0] != "leaky"
        assert b.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'leaky_stmt'").fetchone()[0] == 0
        assert b.execute("SELECT to_regclass('leaky_tmp')").fetchone()[0] is None
    assert server_sessions(cluster) <= 1


def test_abandoned_transaction_is_not_reused_dirty(start_proxy, cluster, pool_user):
    """A client that leaves inside a transaction: the next client starts clean."""
    p = start_proxy(default_pool_size=1, users=dict(PASSWORDS, **{POOL_USER: POOL_PASS}))
    a = p.connect(POOL_USER, POOL_PASS, autocommit=False)
    a.execute("CREATE TEMP TABLE t_abandon(a int)")
    a.pgconn.finish()  # vanish mid-transaction without ROLLBACK
    with p.connect(POOL_USER, POOL_PASS) as b:
        assert b.execute("SELECT txid_current_if_assigned() IS NULL").fetchone()[0] is True
        assert b.info.transaction_status.name == "IDLE"
        assert b.execute("SELECT 1").fetchone()[0] == 1


def test_replica_in_config_serves(start_proxy):
    p = start_proxy(replica=True)
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
