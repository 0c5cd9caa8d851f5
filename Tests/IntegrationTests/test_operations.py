"""Steering without restarts: RELOAD and SIGHUP re-read proxy.conf (pool sizes live, backends added,
timeouts; a bad file is refused and the old config kept), PAUSE/RESUME, and shutdown: SIGTERM lets an
open transaction commit while idle clients go at once, SIGINT stops at once but cleanly."""

from __future__ import annotations

import re
import signal
import time

import psycopg
import pytest

from conftest import PASSWORDS, in_thread

pytestmark = pytest.mark.proxy_only


def admin(p):
    return psycopg.connect(host=p.host, port=p.port, user="sy_admin", password=PASSWORDS["sy_admin"],
                           dbname="switchyard", autocommit=True, sslmode="disable")


def set_key(p, key, value):
    text = p.config_path.read_text()
    text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    if n == 0:
        text = text.replace("[proxy]\n", f"[proxy]\n{key} = {value}\n", 1)
    p.config_path.write_text(text)


def test_reload_raises_the_pool_size_live(start_proxy):
    p = start_proxy(pool_mode="transaction", default_pool_size=1)
    holder = p.connect()
    waiter = p.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1")  # holds the only server
    t, box = in_thread(lambda: waiter.execute("SELECT 42").fetchone()[0])
    t.join(0.8)
    assert t.is_alive(), "the second client should wait for the pool of one"
    set_key(p, "default_pool_size", 2)
    with admin(p) as a:
        a.execute("RELOAD")
        size = {r[0]: r[1] for r in a.execute("SHOW CONFIG").fetchall()}["default_pool_size"]
    assert size == "2"
    t.join(3)
    assert box.get("value") == 42, box
    holder.execute("COMMIT")
    holder.close()
    waiter.close()
    p.assert_alive()


def test_bad_config_is_refused_and_the_old_one_kept(start_proxy):
    p = start_proxy(pool_mode="transaction", statement_timeout="0")
    good = p.config_path.read_text()
    p.config_path.write_text(good.replace("[proxy]\n", "[proxy]\nlisten_prot = 1\nstatement_timeout = soon\n", 1))
    with admin(p) as a:
        with pytest.raises(psycopg.Error) as e:
            a.execute("RELOAD")
        assert e.value.sqlstate == "F0000" and "statement_timeout" in str(e.value), str(e.value)
    p.process.send_signal(signal.SIGHUP)
    p.wait_for_log("reload failed")
    with p.connect() as conn:
        assert conn.execute("SELECT pg_sleep(0.3), 1").fetchone()[1] == 1
    p.assert_alive()


def test_sighup_applies_timeouts_and_backends(start_proxy, cluster):
    p = start_proxy(pool_mode="transaction", health_check_user="sy_scram", health_check_database="sydb",
                    health_check_interval="200ms")
    set_key(p, "statement_timeout", "300ms")
    p.config_path.write_text(p.config_path.read_text()
                             + f"\n[replica.added]\nhost = 127.0.0.1\nport = {cluster.replica_port}\nweight = 1\n")
    p.process.send_signal(signal.SIGHUP)
    p.wait_for_log("config reloaded")
    with p.connect() as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT pg_sleep(3)")
        assert e.value.sqlstate == "57014"
        deadline = time.monotonic() + 5
        ports = set()
        while time.monotonic() < deadline and cluster.replica_port not in ports:
            ports.add(conn.execute("SELECT inet_server_port()").fetchone()[0])
            time.sleep(0.05)
        assert cluster.replica_port in ports, ports  # reads reach the replica added by the reload
    with admin(p) as a:
        names = [r[0] for r in a.execute("SHOW BACKENDS").fetchall()]
    assert names == ["primary", "added"], names


def test_pause_waits_for_servers_and_resume_lets_clients_go(start_proxy):
    p = start_proxy(pool_mode="transaction")
    busy = p.connect()
    client = p.connect()
    busy.execute("BEGIN")
    busy.execute("SELECT 1")
    a = admin(p)
    t, box = in_thread(lambda: a.execute("PAUSE sydb"))
    t.join(0.6)
    assert t.is_alive(), "PAUSE returns only when the open transaction has given its server back"
    busy.execute("COMMIT")
    t.join(3)
    assert not t.is_alive() and "error" not in box, box
    t2, box2 = in_thread(lambda: client.execute("SELECT 7").fetchone()[0])
    t2.join(0.6)
    assert t2.is_alive(), "a paused database hands out no server"
    a.execute("RESUME sydb")
    t2.join(3)
    assert box2.get("value") == 7, box2
    for c in (busy, client, a):
        c.close()
    p.assert_alive()


def test_sigterm_lets_an_open_transaction_commit(start_proxy, cluster):
    cluster.sql("CREATE TABLE IF NOT EXISTS sy_shutdown (x int)")
    cluster.sql("TRUNCATE sy_shutdown")
    cluster.sql("GRANT ALL ON sy_shutdown TO PUBLIC")
    p = start_proxy(pool_mode="transaction", shutdown_timeout="10s")
    idle = p.connect()
    idle.execute("SELECT 1")
    tx = p.connect()
    tx.execute("BEGIN")
    tx.execute("INSERT INTO sy_shutdown VALUES (1)")
    p.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.process.poll() is None, "the proxy waits for the open transaction"
    with pytest.raises(psycopg.Error):
        p.connect().close()  # no new clients
    with pytest.raises(psycopg.Error) as e:
        idle.execute("SELECT 1")  # closed between transactions
    tx.execute("INSERT INTO sy_shutdown VALUES (2)")
    tx.execute("COMMIT")
    assert p.process.wait(timeout=5) == 0
    assert cluster.sql("SELECT count(*) FROM sy_shutdown")[0][0] == 2
    assert "shutting down" in p.log()
    idle.close()
    tx.close()


def test_sigterm_gives_up_at_shutdown_timeout_and_sigint_is_immediate(start_proxy, cluster):
    p = start_proxy(pool_mode="session", shutdown_timeout="1s")
    tx = p.connect()
    tx.execute("BEGIN")
    t0 = time.monotonic()
    p.process.send_signal(signal.SIGTERM)
    assert p.process.wait(timeout=5) == 0
    assert 0.9 <= time.monotonic() - t0 < 3
    tx.close()
    q = start_proxy(pool_mode="session", shutdown_timeout="30s")
    tx = q.connect()
    tx.execute("BEGIN")
    t0 = time.monotonic()
    q.process.send_signal(signal.SIGINT)
    assert q.process.wait(timeout=5) == 0
    assert time.monotonic() - t0 < 2
    with pytest.raises(psycopg.Error):
        tx.execute("SELECT 1")
    tx.close()
    # No server connection of the proxies is left on the primary.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        left = cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'sy_scram' AND state IS NOT NULL")[0][0]
        if left == 0:
            break
        time.sleep(0.1)
    assert left == 0, left
