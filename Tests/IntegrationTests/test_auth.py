"""Client-side auth (trust, md5, scram-sha-256; userlist secrets as plaintext, md5 and SCRAM
verifiers) and server-side auth (the proxy logs in to Postgres with scram, md5 and trust)."""

import hashlib
import time

import psycopg
import pytest

from conftest import PASSWORDS


def select_user(proxy, user, password=None):
    with proxy.connect(user, password) as conn:
        return conn.execute("SELECT current_user").fetchone()[0]


def expect_auth_failure(proxy, user, password, states=("28P01",)):
    with pytest.raises(psycopg.OperationalError):
        proxy.connect(user, password).close()
    sqlstate, msg = proxy.login_error(user, password)
    assert sqlstate in states, f"sqlstate {sqlstate}: {msg}"
    # The proxy keeps serving after a failed login.
    assert select_user(proxy, "sy_scram") == "sy_scram"
    if proxy.process:
        proxy.assert_alive()


# ---- client auth: scram-sha-256 ----


def test_scram_client_ok(start_proxy):
    p = start_proxy(auth_type="scram-sha-256")
    assert select_user(p, "sy_scram") == "sy_scram"


def test_scram_client_wrong_password(start_proxy):
    p = start_proxy(auth_type="scram-sha-256")
    expect_auth_failure(p, "sy_scram", "wrong-pass")


@pytest.mark.proxy_only
def test_scram_client_unknown_user(start_proxy):
    p = start_proxy(auth_type="scram-sha-256")
    expect_auth_failure(p, "sy_nobody", "whatever", states=("28P01", "28000"))


# ---- client auth: md5 ----


@pytest.mark.proxy_only
def test_md5_client_ok(start_proxy):
    p = start_proxy(auth_type="md5")
    assert select_user(p, "sy_md5") == "sy_md5"
    # Plaintext userlist secret: md5 to the client, SCRAM to the server.
    assert select_user(p, "sy_scram") == "sy_scram"


@pytest.mark.proxy_only
def test_md5_client_wrong_password(start_proxy):
    p = start_proxy(auth_type="md5")
    expect_auth_failure(p, "sy_md5", "wrong-pass")


# ---- client auth: trust ----


@pytest.mark.proxy_only
def test_trust_client_ok_without_password(start_proxy):
    p = start_proxy(auth_type="trust")
    # The client sends no password; the proxy logs in to the server with the userlist secret.
    assert select_user(p, "sy_scram", password="") == "sy_scram"
    assert select_user(p, "sy_md5", password="") == "sy_md5"


@pytest.mark.proxy_only
def test_trust_client_unknown_user_rejected(start_proxy):
    p = start_proxy(auth_type="trust")
    expect_auth_failure(p, "sy_not_in_userlist", "", states=("28000", "28P01"))


# ---- userlist secrets that are not plaintext ----


@pytest.mark.proxy_only
def test_userlist_md5_secret(start_proxy):
    secret = "md5" + hashlib.md5(("md5-pass" + "sy_md5").encode()).hexdigest()
    users = dict(PASSWORDS, sy_md5=secret)
    p = start_proxy(auth_type="md5", users=users)
    assert select_user(p, "sy_md5", "md5-pass") == "sy_md5"
    expect_auth_failure(p, "sy_md5", "not-md5-pass")


@pytest.mark.proxy_only
def test_userlist_scram_secret_passthrough(start_proxy, cluster):
    """The SCRAM verifier copied from pg_authid: the proxy checks the client with it and, with the
    ClientKey recovered from the client's proof, logs in to the server (no plaintext anywhere)."""
    secret = cluster.scram_secret("sy_scram")
    assert secret.startswith("SCRAM-SHA-256$")
    users = dict(PASSWORDS, sy_scram=secret)
    p = start_proxy(auth_type="scram-sha-256", users=users)
    assert select_user(p, "sy_scram", "scram-pass") == "sy_scram"
    expect_auth_failure(p, "sy_scram", "wrong-pass")


# ---- server-side auth ----


@pytest.mark.parametrize("user", ["sy_scram", "sy_md5", "sy_trust"])
def test_server_side_auth(start_proxy, cluster, user):
    """Server hba: sy_scram scram-sha-256, sy_md5 md5, sy_trust trust."""
    p = start_proxy(auth_type="scram-sha-256")
    with p.connect(user) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (user, "sydb")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # The session is a real one on the primary, seen by an admin connected directly.
        with cluster.admin() as admin:
            row = admin.execute("SELECT usename, datname FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        assert row == (user, "sydb")


@pytest.mark.proxy_only
def test_server_scram_keys_follow_a_new_salt(start_proxy, cluster):
    """The proxy derives the server's SCRAM keys from an auth_file password once and reuses them
    while the role's salt stays the same; a password set again (new salt) is derived anew, and a
    password changed behind the proxy's back fails the next server login with 28P01."""
    with cluster.admin() as admin:
        admin.execute("DROP ROLE IF EXISTS sy_rotate")
        admin.execute("CREATE ROLE sy_rotate LOGIN PASSWORD 'rot-pass'")
    try:
        p = start_proxy(auth_type="scram-sha-256", pool_mode="transaction", users=dict(PASSWORDS, sy_rotate="rot-pass"))

        def new_server_login():
            # Ends every server session of the role: the next query logs in again.
            with cluster.admin() as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sy_rotate'")
                for _ in range(100):
                    if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'sy_rotate'").fetchone()[0] == 0:
                        break
                    time.sleep(0.05)

        def backend_pid(conn):
            for _ in range(3):
                try:
                    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                except psycopg.OperationalError:
                    # The terminated server may be noticed on this query: it is retried on a new one.
                    time.sleep(0.1)
            raise AssertionError("no server")

        with p.connect("sy_rotate", "rot-pass") as conn:
            first = backend_pid(conn)
            new_server_login()
            second = backend_pid(conn)  # same salt: the keys derived at the first login
            assert second != first
            with cluster.admin() as admin:
                admin.execute("ALTER ROLE sy_rotate PASSWORD 'rot-pass'")  # same password, new salt
            new_server_login()
            third = backend_pid(conn)
            assert third not in (first, second)
            with cluster.admin() as admin:
                admin.execute("ALTER ROLE sy_rotate PASSWORD 'changed-elsewhere'")
            new_server_login()
            with pytest.raises(psycopg.Error) as failed:
                for _ in range(3):
                    conn.execute("SELECT 1")
            assert failed.value.sqlstate == "28P01", failed.value
        p.assert_alive()
    finally:
        with cluster.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sy_rotate'")
            time.sleep(0.2)
            admin.execute("DROP ROLE IF EXISTS sy_rotate")
