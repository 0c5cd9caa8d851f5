"""The admin console: `psql ... dbname=switchyard` as a user in admin_users (or stats_users), PgBouncer's
SHOW column names, pinned clients visible, and refusals with the right SQLSTATE."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from conftest import PASSWORDS, free_port

pytestmark = pytest.mark.proxy_only

ADMIN_USERS = dict(PASSWORDS, sy_admin_console="console-pass", sy_stats="stats-pass")


def admin_connect(p, user="sy_admin_console"):
    return psycopg.connect(host="127.0.0.1", port=p.port, user=user, password=ADMIN_USERS[user],
                           dbname="switchyard", autocommit=True)


def show(conn, what):
    cur = conn.execute(f"SHOW {what}")
    cols = [d.name for d in cur.description]
    return cols, [dict(zip(cols, r)) for r in cur.fetchall()]


def test_show_commands_use_pgbouncer_columns_and_show_pins(start_proxy):
    p = start_proxy(users=ADMIN_USERS, pool_mode="transaction", admin_users="sy_admin_console",
                    stats_users="sy_stats")
    with p.connect("sy_scram") as app, admin_connect(p) as admin:
        app.execute("LISTEN sy_admin_chan")
        app.execute("SELECT 1")
        cols, clients = show(admin, "CLIENTS")
        assert cols[:8] == ["type", "user", "database", "replication", "state", "addr", "port", "local_addr"]
        assert cols[-1] == "pinned"
        mine = [c for c in clients if c["user"] == "sy_scram"]
        assert mine and mine[0]["pinned"] == "listen", clients
        cols, pools = show(admin, "POOLS")
        assert cols[:4] == ["database", "user", "cl_active", "cl_waiting"] and "pool_mode" in cols
        assert any(r["user"] == "sy_scram" and r["pool_mode"] == "transaction" for r in pools), pools
        cols, servers = show(admin, "SERVERS")
        assert "remote_pid" in cols and cols[-1] == "backend"
        assert any(s["user"] == "sy_scram" and s["remote_pid"] > 0 for s in servers), servers
        _, config = show(admin, "CONFIG")
        keys = {r["key"]: r["value"] for r in config}
        assert keys["pool_mode"] == "transaction"
        _, version = show(admin, "VERSION")
        assert version[0]["version"].startswith("Switchyard ")
        app.execute("UNLISTEN *")
        _, clients = show(admin, "CLIENTS")
        assert [c["pinned"] for c in clients if c["user"] == "sy_scram"] == [None]


def test_admin_console_refusals(start_proxy):
    p = start_proxy(users=ADMIN_USERS, admin_users="sy_admin_console", stats_users="sy_stats")
    # A user not in admin_users/stats_users: 28000.
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(host="127.0.0.1", port=p.port, user="sy_scram", password=PASSWORDS["sy_scram"],
                        dbname="switchyard").close()
    assert "not allowed to connect to the admin console" in str(e.value)
    # stats_users may SHOW but not RELOAD or SHUTDOWN.
    with admin_connect(p, "sy_stats") as stats:
        show(stats, "POOLS")
        with pytest.raises(psycopg.Error) as e:
            stats.execute("RELOAD")
        assert "admin access needed" in str(e.value)
    with admin_connect(p) as admin:
        with pytest.raises(psycopg.Error) as e:
            admin.execute("SELECT 1")
        assert "SHOW HELP" in str(e.value)
        admin.execute("RELOAD")
    p.assert_alive()


def test_show_backends_lists_role_circuit_and_lag(start_proxy_sections, cluster):
    p = start_proxy_sections(
        sections={"replica.r1": {"host": "127.0.0.1", "port": cluster.replica_port, "weight": 3},
                  "replica.gone": {"host": "127.0.0.1", "port": free_port(), "weight": 1}},
        users=ADMIN_USERS, admin_users="sy_admin_console", pool_mode="transaction",
        health_check_user="sy_scram", health_check_database="sydb", health_check_interval="200ms")
    deadline = time.monotonic() + 10
    while True:
        with admin_connect(p) as admin:
            cols, rows = show(admin, "BACKENDS")
        by_name = {r["name"]: r for r in rows}
        if (by_name.get("r1", {}).get("lsn") and by_name.get("gone", {}).get("circuit") == "open") \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert cols[:6] == ["name", "host", "port", "role", "in_recovery", "circuit"], cols
    assert set(by_name) == {"primary", "r1", "gone"}, rows
    assert by_name["primary"]["role"] == "primary" and by_name["primary"]["port"] == cluster.primary_port
    r1 = by_name["r1"]
    assert (r1["role"], r1["in_recovery"], r1["circuit"], r1["weight"]) == ("replica", "t", "closed", 3), r1
    assert r1["lag_bytes"] is not None and r1["lag_bytes"] >= 0, r1
    assert by_name["gone"]["circuit"] == "open" and by_name["gone"]["last_error"], by_name["gone"]
