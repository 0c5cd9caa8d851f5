"""TLS on both sides: psql with sslmode=require / verify-ca / verify-full (right and wrong host name),
psycopg and asyncpg over TLS with SCRAM, plaintext refused with 28000 under require, client-certificate
login (auth_type = cert), garbage and stalled handshakes, expired and untrusted certificates, a 50 MB
bytea and cancel requests over TLS, RELOAD of certificate files, pgbench over TLS; and towards servers:
a Postgres with ssl = on reached with server_tls_sslmode = verify-full (health probes and cancels too),
a wrong CA or host name giving the client a clear 08001. Certificates come from tlscerts.py (openssl)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import psycopg
import pytest

import conftest
import tlscerts
from conftest import PASSWORDS, as_postgres, free_port
from pgwire import RawConn, data_rows, ssl_request, startup_packet
from test_large_data import RssSampler

pytestmark = pytest.mark.proxy_only


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> tlscerts.Certs:
    return tlscerts.generate(tmp_path_factory.mktemp("tls-certs"))


def client_tls(certs: tlscerts.Certs, mode: str = "require", ca: bool = False, cert: str = "server") -> dict:
    """[proxy] settings for TLS towards clients."""
    s = {"client_tls_sslmode": mode, "client_tls_cert_file": certs.path(f"{cert}.crt"),
         "client_tls_key_file": certs.path(f"{cert}.key")}
    if ca:
        s["client_tls_ca_file"] = certs.path("ca.crt")
    return s


@pytest.fixture
def start_tls_proxy(start_proxy):
    """start_proxy plus primary={key: value}: extra keys in the [primary] section (per-backend TLS)."""

    def start(primary: dict | None = None, **kw):
        base = conftest.render_config
        if primary:
            extra = "".join(f"{k} = {v}\n" for k, v in primary.items())
            conftest.render_config = lambda *a, **k: base(*a, **k).replace("[primary]\n", "[primary]\n" + extra, 1)
        try:
            return start_proxy(**kw)
        finally:
            conftest.render_config = base

    return start


@dataclasses.dataclass
class SSLPostgres:
    """A Postgres of its own with ssl = on and only hostssl lines in pg_hba.conf."""

    port: int
    base_dir: Path
    pg_bin: str

    def superuser(self, dbname: str = "sydb") -> psycopg.Connection:
        return psycopg.connect(host=str(self.base_dir), port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=5)

    def ssl_sessions(self) -> list[tuple]:
        """(usename, application_name, ssl, version) of every client backend but our own."""
        with self.superuser() as c:
            return c.execute(
                "SELECT a.usename, a.application_name, s.ssl, s.version FROM pg_stat_activity a "
                "JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
            ).fetchall()


@pytest.fixture(scope="module")
def ssl_postgres(cluster, certs):
    base = Path(tempfile.mkdtemp(prefix="sy-sslpg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    pg = SSLPostgres(free_port(), base, cluster.pg_bin)
    if os.getuid() == 0:
        subprocess.run(["chown", "postgres:", str(base)], check=True)

    def run(*cmd, **kw):
        r = subprocess.run(as_postgres(list(cmd)), capture_output=True, text=True, **kw)
        if r.returncode != 0:
            pytest.fail(f"{cmd} failed:\n{r.stdout}\n{r.stderr}\n{(base / 'postgres.log').read_text() if (base / 'postgres.log').exists() else ''}",
                        pytrace=False)
        return r

    run(os.path.join(cluster.pg_bin, "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-locale",
        "--auth-local=trust", "--auth-host=reject")
    for name, target in (("pgserver.crt", "server.crt"), ("pgserver.key", "server.key"), ("ca.crt", "root.crt")):
        shutil.copy(certs.path(name), data / target)
        if os.getuid() == 0:
            subprocess.run(["chown", "postgres:", str(data / target)], check=True)
    os.chmod(data / "server.key", 0o600)
    conf = f"""
listen_addresses = '127.0.0.1'
port = {pg.port}
unix_socket_directories = '{base}'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
max_connections = 40
shared_buffers = 16MB
fsync = off
password_encryption = 'scram-sha-256'
"""
    run("tee", "-a", str(data / "postgresql.conf"), input=conf)
    hba = """local all postgres trust
hostssl all sy_certuser 127.0.0.1/32 cert
hostssl all all 127.0.0.1/32 scram-sha-256
hostnossl all all 127.0.0.1/32 reject
"""
    run("tee", str(data / "pg_hba.conf"), input=hba)
    run(os.path.join(cluster.pg_bin, "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-w", "-t", "60", "start")
    try:
        with pg.superuser("postgres") as c:
            c.execute("CREATE ROLE sy_scram LOGIN PASSWORD 'scram-pass'")
            c.execute("CREATE ROLE sy_certuser LOGIN")
            c.execute("CREATE DATABASE sydb OWNER sy_scram")
        yield pg
    finally:
        subprocess.run(as_postgres([os.path.join(cluster.pg_bin, "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# ---- helpers -------------------------------------------------------------------------------


def psql(pg_bin: str, conninfo: str, sql: str, password: str = PASSWORDS["sy_scram"]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    return subprocess.run([os.path.join(pg_bin, "psql"), "-X", "-At", "-d", conninfo, "-c", sql],
                          env=env, capture_output=True, text=True, timeout=60)


def dsn(p, user: str = "sy_scram", **kw) -> str:
    parts = {"host": p.host, "port": p.port, "user": user, "dbname": "sydb"}
    parts.update(kw)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def tls_context(certs, verify: bool = True, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(certs.path(f"{cert}.crt"), certs.path(f"{cert}.key"))
    return ctx


def served_serial(p, certs) -> int:
    """Serial number of the certificate the proxy shows a new client (SSLRequest, then a verified handshake)."""
    with socket.create_connection((p.host, p.port), timeout=5) as raw:
        raw.sendall(ssl_request())
        assert raw.recv(1) == b"S"
        with tls_context(certs).wrap_socket(raw, server_hostname="localhost") as tls:
            return int(tls.getpeercert()["serialNumber"], 16)


def login_error_tls(p, ctx: ssl.SSLContext | bool, user: str = "sy_scram", password: str | None = None) -> tuple[str | None, str]:
    """(sqlstate, message) of a failed login over TLS (asyncpg exposes the SQLSTATE of a startup error)."""
    pw = PASSWORDS.get(user, "") if password is None else password

    async def attempt():
        conn = await asyncpg.connect(host=p.host, port=p.port, user=user, password=pw, database="sydb", ssl=ctx, timeout=10)
        await conn.close()

    try:
        asyncio.run(attempt())
    except asyncpg.PostgresError as e:
        return e.sqlstate, str(e)
    pytest.fail(f"login as {user} succeeded but was expected to fail")


def admin_tls(p) -> psycopg.Connection:
    return psycopg.connect(host=p.host, port=p.port, user="sy_admin", password=PASSWORDS["sy_admin"],
                           dbname="switchyard", autocommit=True, sslmode="require")


# ---- clients over TLS ----------------------------------------------------------------------


def test_psql_sslmode_require(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs))
    r = psql(pg_bin, dsn(p, sslmode="require"), "SELECT 'over tls', current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "over tls|sy_scram"
    text = p.wait_for_log("tls=TLSv1.3")
    assert "client logged in" in text


def test_psql_verify_ca_and_verify_full(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs))
    root = certs.path("ca.crt")
    # verify-ca: the chain only; verify-full by name (localhost) and by IP address (127.0.0.1 in the SAN).
    for conninfo in (dsn(p, sslmode="verify-ca", sslrootcert=root),
                     dsn(p, host="localhost", hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert=root),
                     dsn(p, host="127.0.0.1", sslmode="verify-full", sslrootcert=root)):
        r = psql(pg_bin, conninfo, "SELECT 42")
        assert r.returncode == 0, f"{conninfo}: {r.stderr}"
        assert r.stdout.strip() == "42"


def test_psql_verify_full_wrong_host_name_fails_client_side(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs))
    r = psql(pg_bin, dsn(p, host="wrong.example", hostaddr="127.0.0.1", sslmode="verify-full",
                         sslrootcert=certs.path("ca.crt")), "SELECT 1")
    assert r.returncode != 0
    assert 'does not match host name "wrong.example"' in r.stderr, r.stderr
    # A CA that did not sign the proxy's certificate: refused by the client too.
    r = psql(pg_bin, dsn(p, sslmode="verify-ca", sslrootcert=certs.path("other_ca.crt")), "SELECT 1")
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr
    p.assert_alive()
    with p.connect(sslmode="require") as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_plaintext_refused_with_28000_under_require(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs))
    state, message = p.login_error()  # asyncpg, ssl=False
    assert state == "28000", message
    assert "TLS required" in message
    r = psql(pg_bin, dsn(p, sslmode="disable"), "SELECT 1")
    assert r.returncode != 0 and "TLS required" in r.stderr, r.stderr
    # A raw startup packet gets the ErrorResponse in plaintext, then EOF.
    with RawConn(p.host, p.port) as c:
        c.send(startup_packet("sy_scram"))
        data, closed = c.read_until_eof()
        assert closed and b"28000" in data
    p.wait_for_log("plaintext login refused (TLS required)")
    p.assert_alive()


def test_allow_takes_both_and_disable_answers_n(start_proxy, certs):
    p = start_proxy(**client_tls(certs, mode="allow"))
    with p.connect(sslmode="disable") as plain, p.connect(sslmode="require") as tls:
        assert plain.pgconn.ssl_in_use is False
        assert tls.pgconn.ssl_in_use is True
        assert plain.execute("SELECT 1").fetchone()[0] == tls.execute("SELECT 1").fetchone()[0]
    q = start_proxy()
    with RawConn(q.host, q.port) as c:
        c.send(ssl_request())
        assert c.recv_exact(1) == b"N"


def test_psycopg_scram_and_md5_over_tls(start_proxy, certs):
    p = start_proxy(**client_tls(certs, mode="verify-full", ca=True))
    for user in ("sy_scram", "sy_md5"):
        with p.connect(user=user, sslmode="verify-full", host="localhost", sslrootcert=certs.path("ca.crt"),
                       sslcert=certs.path(f"client_{user}.crt"), sslkey=certs.path(f"client_{user}.key")) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT current_user").fetchone()[0] == user
            conn.execute("CREATE TEMP TABLE t(x int)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
            assert conn.execute("SELECT sum(x) FROM t").fetchone()[0] == 500500
    # Wrong password over TLS: SCRAM still says so.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        p.connect(password="nope", sslmode="require", sslcert=certs.path("client_sy_scram.crt"),
                  sslkey=certs.path("client_sy_scram.key"))
    # verify-full on the client side: no certificate, no login (28000).
    state, message = login_error_tls(p, tls_context(certs, verify=False))
    assert state == "28000" and "client certificate" in message, message


def test_tls_1_2_only_client_and_protocol_floor(start_proxy, certs):
    p = start_proxy(**client_tls(certs), client_tls_protocols="tlsv1.2")
    with p.connect(sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
    p.wait_for_log("tls=TLSv1.2")
    q = start_proxy(**client_tls(certs), client_tls_protocols="tlsv1.3")
    with pytest.raises(psycopg.OperationalError):
        q.connect(sslmode="require", ssl_max_protocol_version="TLSv1.2")
    q.assert_alive()


# ---- bad input -----------------------------------------------------------------------------


def test_garbage_instead_of_client_hello(start_proxy, certs):
    p = start_proxy(**client_tls(certs))
    for garbage in (b"this is not a TLS ClientHello\r\n" * 4, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 300):
        with RawConn(p.host, p.port) as c:
            c.send(ssl_request())
            assert c.recv_exact(1) == b"S"
            c.send(garbage)
            data, closed = c.read_until_eof(timeout=5)
            assert closed, "the proxy should close a connection whose handshake failed"
    text = p.wait_for_log("TLS handshake failed")
    assert re.search(r"TLS handshake failed: \w", text)
    p.assert_alive()
    with p.connect(sslmode="require") as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_tls_record_without_sslrequest_is_refused(start_proxy, certs):
    """A ClientHello sent straight away (no SSLRequest): not a startup packet, 08P01 in plaintext, closed."""
    p = start_proxy(**client_tls(certs))
    hello = bytes.fromhex("16030100c4010000c00303") + os.urandom(32) + b"\x00" * 160
    with RawConn(p.host, p.port) as c:
        c.send(hello)
        data, closed = c.read_until_eof()
        assert closed and b"08P01" in data
    p.assert_alive()


def test_stalled_handshake_is_bounded_by_client_login_timeout(start_proxy, certs):
    p = start_proxy(**client_tls(certs), client_login_timeout="1s")
    with RawConn(p.host, p.port) as silent, RawConn(p.host, p.port) as partial:
        for c in (silent, partial):
            c.send(ssl_request())
            assert c.recv_exact(1) == b"S"
        partial.send(bytes.fromhex("16030100c4010000c00303"))  # the start of a ClientHello, then nothing
        t0 = time.monotonic()
        for c in (silent, partial):
            _, closed = c.read_until_eof(timeout=5)
            assert closed, "a stalled handshake must be closed by client_login_timeout"
        assert time.monotonic() - t0 < 4
    p.wait_for_log("reason=login timeout")
    p.assert_alive()


def test_unencrypted_bytes_after_sslrequest_are_refused(start_proxy, certs):
    p = start_proxy(**client_tls(certs))
    with RawConn(p.host, p.port) as c:
        c.send(ssl_request() + startup_packet("sy_scram"))
        data, closed = c.read_until_eof()
        assert closed and b"08P01" in data and b"unencrypted data after SSL request" in data
    p.assert_alive()


def test_expired_and_untrusted_client_certificates_are_refused(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs, ca=True))
    for cert, why in (("client_expired", "certificate has expired"), ("client_other_ca", "unable to get local issuer certificate")):
        r = psql(pg_bin, dsn(p, sslmode="require", sslcert=certs.path(f"{cert}.crt"), sslkey=certs.path(f"{cert}.key")),
                 "SELECT 1")
        assert r.returncode != 0, r.stdout
        assert "alert" in r.stderr or "certificate" in r.stderr, r.stderr
        p.wait_for_log(why)
    p.assert_alive()
    # A good certificate still works, and no certificate is fine under require.
    r = psql(pg_bin, dsn(p, sslmode="require", sslcert=certs.path("client_sy_scram.crt"),
                         sslkey=certs.path("client_sy_scram.key")), "SELECT 7")
    assert r.returncode == 0 and r.stdout.strip() == "7", r.stderr
    r = psql(pg_bin, dsn(p, sslmode="require"), "SELECT 8")
    assert r.returncode == 0 and r.stdout.strip() == "8", r.stderr


def test_missing_certificate_file_stops_the_start(start_proxy, certs, tmp_path):
    p = start_proxy(wait=False, client_tls_sslmode="require", client_tls_cert_file=str(tmp_path / "none.crt"),
                    client_tls_key_file=certs.path("server.key"))
    assert p.process.wait(timeout=10) != 0
    assert "cannot load client_tls_cert_file" in p.log()


def test_check_loads_the_tls_files(certs, tmp_path):
    binary = conftest.switchyard_bin()

    def check(cert: str, key: str) -> subprocess.CompletedProcess:
        conf = tmp_path / "check.conf"
        conf.write_text(f"[proxy]\nclient_tls_sslmode = require\nclient_tls_cert_file = {cert}\n"
                        f"client_tls_key_file = {key}\n[primary]\nhost = 127.0.0.1\n")
        return subprocess.run([binary, "--config", str(conf), "--check"], capture_output=True, text=True, timeout=30)

    r = check(certs.path("server.crt"), certs.path("server.key"))
    assert r.returncode == 0, r.stderr
    r = check(certs.path("server.crt"), certs.path("server2.key"))
    assert r.returncode == 2 and "does not match client_tls_cert_file" in r.stderr, r.stderr
    r = check(str(tmp_path / "missing.crt"), certs.path("server.key"))
    assert r.returncode == 2 and "cannot load client_tls_cert_file" in r.stderr, r.stderr


# ---- client certificates ------------------------------------------------------------------


def test_cert_auth_takes_the_user_from_the_certificate(start_proxy, certs, pg_bin):
    p = start_proxy(auth_type="cert", **client_tls(certs, ca=True))
    key = {"sslcert": certs.path("client_sy_scram.crt"), "sslkey": certs.path("client_sy_scram.key")}
    # No password: the certificate is the credential (the proxy logs in to Postgres with the auth_file secret).
    r = psql(pg_bin, dsn(p, sslmode="verify-full", host="localhost", sslrootcert=certs.path("ca.crt"), **key),
             "SELECT current_user", password="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sy_scram"
    # Another user with this certificate.
    r = psql(pg_bin, dsn(p, user="sy_md5", sslmode="require", **key), "SELECT 1", password="")
    assert r.returncode != 0 and 'certificate authentication failed for user "sy_md5"' in r.stderr, r.stderr
    p.wait_for_log('certificate CommonName "sy_scram" is not the user name')
    # No certificate at all: 28000.
    state, message = login_error_tls(p, tls_context(certs, verify=False))
    assert state == "28000" and "requires a valid client certificate" in message, message
    # Plaintext: 28000 too.
    state, _ = p.login_error()
    assert state == "28000"
    p.assert_alive()


# ---- streaming and cancel -----------------------------------------------------------------


def test_50mb_bytea_streams_through_tls(start_proxy, certs):
    p = start_proxy(**client_tls(certs))
    blob = os.urandom(50 * 1024 * 1024)
    digest = hashlib.sha256(blob).hexdigest()
    sampler = RssSampler(p)
    with p.connect(sslmode="require") as conn:
        conn.execute("DROP TABLE IF EXISTS tls_bytea")
        conn.execute("CREATE TABLE tls_bytea(id int, data bytea)")
        conn.execute("ALTER TABLE tls_bytea ALTER COLUMN data SET STORAGE EXTERNAL")
        baseline_kb = p.rss_kb()
        sampler.start()
        try:
            conn.execute("INSERT INTO tls_bytea VALUES (1, %b)", (blob,))
            back = conn.execute("SELECT data FROM tls_bytea WHERE id = 1", binary=True).fetchone()[0]
            back_text = conn.execute("SELECT data FROM tls_bytea WHERE id = 1").fetchone()[0]
        finally:
            sampler.stop_flag.set()
            sampler.join()
        assert hashlib.sha256(back).hexdigest() == digest
        assert hashlib.sha256(back_text).hexdigest() == digest
        conn.execute("DROP TABLE tls_bytea")
    peak_mb = sampler.max_kb / 1024
    print(f"proxy RSS over TLS: baseline {baseline_kb / 1024:.1f} MB, peak {peak_mb:.1f} MB ({sampler.samples} samples)")
    assert sampler.samples > 10
    assert peak_mb < 64, f"proxy RSS peaked at {peak_mb:.1f} MB (baseline {baseline_kb / 1024:.1f} MB)"


def cancel_during_sleep(conn: psycopg.Connection, cancel) -> float:
    """Runs pg_sleep(20), calls cancel(conn) after 0.5 s; returns how long the statement took to end."""
    timer = threading.Timer(0.5, lambda: cancel(conn))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
    finally:
        timer.cancel()
    return time.monotonic() - t0


def test_cancel_from_a_tls_client(start_proxy, certs):
    p = start_proxy(**client_tls(certs))
    with p.connect(sslmode="require") as conn:
        # libpq's PQcancel: a plaintext CancelRequest on a new connection (accepted even under require).
        assert cancel_during_sleep(conn, lambda c: c.cancel()) < 5
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        # libpq 17+'s encrypted cancel: SSLRequest, TLS, then the CancelRequest.
        assert cancel_during_sleep(conn, lambda c: c.cancel_safe(timeout=5)) < 5
        assert conn.execute("SELECT 2").fetchone()[0] == 2
    assert p.log().count("forwarding cancel") >= 2


def test_transaction_pooling_and_routing_over_tls(start_proxy, certs, cluster):
    p = start_proxy(pool_mode="transaction", replica=True, default_pool_size=2, health_check_user="sy_scram",
                    health_check_database="sydb", query_wait_timeout="10s", read_your_writes="off", **client_tls(certs))
    conns = [p.connect(sslmode="require") for _ in range(4)]
    try:
        for i, conn in enumerate(conns):
            # Extended protocol with server-side prepared statements (psycopg prepares after 2 executions).
            for _ in range(3):
                assert conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
            with conn.transaction():
                conn.execute("SET LOCAL application_name = 'tx_tls'")
                # inet_server_port() is stable, so a read; inside a transaction it stays on the primary.
                assert conn.execute("SELECT inet_server_port()").fetchone()[0] == cluster.primary_port
        deadline = time.monotonic() + 5
        while conns[0].execute("SELECT inet_server_port()").fetchone()[0] != cluster.replica_port:
            assert time.monotonic() < deadline, "reads outside a transaction should reach the replica"
            time.sleep(0.1)
    finally:
        for conn in conns:
            conn.close()
    p.assert_alive()


# ---- RELOAD --------------------------------------------------------------------------------


def test_reload_picks_new_certificate_files_and_keeps_sessions(start_proxy, certs, tmp_path):
    crt, key = tmp_path / "proxy.crt", tmp_path / "proxy.key"
    shutil.copy(certs.path("server.crt"), crt)
    shutil.copy(certs.path("server.key"), key)
    p = start_proxy(client_tls_sslmode="require", client_tls_cert_file=str(crt), client_tls_key_file=str(key))
    assert served_serial(p, certs) == 4097
    old = p.connect(sslmode="require")
    old.execute("CREATE TEMP TABLE kept(x int)")
    old.execute("INSERT INTO kept VALUES (1)")
    # New files at the same paths, then RELOAD.
    shutil.copy(certs.path("server2.crt"), crt)
    shutil.copy(certs.path("server2.key"), key)
    with admin_tls(p) as a:
        a.execute("RELOAD")
    assert served_serial(p, certs) == 8194
    # The session that started on the old certificate goes on (its TLS state is untouched).
    assert old.execute("SELECT count(*) FROM kept").fetchone()[0] == 1
    old.execute("SELECT repeat('x', 1000000)")
    with p.connect(sslmode="require") as new:
        assert new.execute("SELECT 3").fetchone()[0] == 3
    # A broken certificate file is refused: the old context stays.
    crt.write_text("not a certificate\n")
    with admin_tls(p) as a:
        with pytest.raises(psycopg.Error) as e:
            a.execute("RELOAD")
        assert e.value.sqlstate == "F0000" and "client_tls_cert_file" in str(e.value), str(e.value)
    assert served_serial(p, certs) == 8194
    # A certificate with another certificate's key: refused too.
    shutil.copy(certs.path("server.crt"), crt)
    with admin_tls(p) as a:
        with pytest.raises(psycopg.Error, match="does not match"):
            a.execute("RELOAD")
    # SIGHUP with a good pair again.
    shutil.copy(certs.path("server.key"), key)
    p.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while served_serial(p, certs) != 4097:
        assert time.monotonic() < deadline, "SIGHUP did not load the certificate"
        time.sleep(0.1)
    assert old.execute("SELECT 4").fetchone()[0] == 4
    old.close()
    p.assert_alive()


def test_reload_turns_client_tls_on(start_proxy, certs):
    p = start_proxy()
    with RawConn(p.host, p.port) as c:
        c.send(ssl_request())
        assert c.recv_exact(1) == b"N"
    text = p.config_path.read_text()
    extra = "".join(f"{k} = {v}\n" for k, v in client_tls(certs, mode="prefer").items())
    p.config_path.write_text(text.replace("[proxy]\n", "[proxy]\n" + extra, 1))
    p.process.send_signal(signal.SIGHUP)
    p.wait_for_log("client TLS ready")
    with p.connect(sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use


# ---- pgbench -------------------------------------------------------------------------------


def test_pgbench_over_tls(start_proxy, certs, pg_bin):
    p = start_proxy(**client_tls(certs))
    env = dict(conftest.pg_env(p), PGSSLMODE="require")

    def pgbench(*args):
        return subprocess.run([os.path.join(pg_bin, "pgbench"), *args], env=env, capture_output=True, text=True, timeout=120)

    r = pgbench("-i", "-s", "1", "-q")
    assert r.returncode == 0, r.stderr
    for args in (("-S", "-M", "extended"), ("-M", "prepared"), ("-S", "-C")):
        r = pgbench(*args, "-c", "4", "-j", "2", "-T", "2", "-n")
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 0, out
        m = re.search(r"number of failed transactions: (\d+)", out)
        assert m and int(m.group(1)) == 0, out
    p.assert_alive()


# ---- towards servers -----------------------------------------------------------------------


def server_tls(certs, mode: str = "verify-full", ca: str = "ca") -> dict:
    return {"server_tls_sslmode": mode, "server_tls_ca_file": certs.path(f"{ca}.crt")}


def test_tls_on_both_sides_with_verify_full(start_proxy, certs, ssl_postgres):
    p = start_proxy(primary_host="localhost", primary_port=ssl_postgres.port, **client_tls(certs), **server_tls(certs))
    with p.connect(sslmode="verify-full", host="localhost", sslrootcert=certs.path("ca.crt")) as conn:
        assert conn.pgconn.ssl_in_use
        ssl_on, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl_on is True and version == "TLSv1.3"
        assert conn.execute("SELECT current_user").fetchone()[0] == "sy_scram"
        with admin_tls(p) as a:
            clients = a.execute("SHOW CLIENTS").fetchall()
            servers = a.execute("SHOW SERVERS").fetchall()
            tls_col = [d.name for d in a.execute("SHOW CLIENTS").description].index("tls")
        assert all(row[tls_col].startswith("TLSv1.3/") for row in clients), clients
        assert servers and all(row[tls_col].startswith("TLSv1.3/") for row in servers), servers


def test_server_verify_full_failures_give_the_client_08001(start_proxy, certs, ssl_postgres):
    # The wrong CA.
    p = start_proxy(primary_host="localhost", primary_port=ssl_postgres.port, **server_tls(certs, ca="other_ca"))
    state, message = p.login_error()
    assert state == "08001", message
    assert "TLS handshake with the server failed" in message and "certificate verify failed" in message, message
    # The right CA, but the backend is addressed by an IP address its certificate does not name.
    q = start_proxy(primary_host="127.0.0.1", primary_port=ssl_postgres.port, **server_tls(certs))
    state, message = q.login_error()
    assert state == "08001" and "IP address mismatch" in message, message
    # verify-ca does not check names: the same address works.
    r = start_proxy(primary_host="127.0.0.1", primary_port=ssl_postgres.port, **server_tls(certs, mode="verify-ca"))
    with r.connect() as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    for proxy in (p, q, r):
        proxy.assert_alive()


def test_server_require_and_prefer_against_a_plaintext_server(start_proxy, cluster):
    p = start_proxy(server_tls_sslmode="require")
    state, message = p.login_error()
    assert state == "08001" and "server does not support TLS" in message, message
    q = start_proxy(server_tls_sslmode="prefer")
    with q.connect() as conn:
        assert conn.execute("SELECT 5").fetchone()[0] == 5


def test_server_prefer_uses_tls_when_offered_and_disable_is_refused(start_proxy, ssl_postgres):
    p = start_proxy(primary_port=ssl_postgres.port, server_tls_sslmode="prefer")
    with p.connect() as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    q = start_proxy(primary_port=ssl_postgres.port)  # server_tls_sslmode = disable: pg_hba rejects hostnossl
    state, message = q.login_error()
    assert state == "28000" and "no encryption" in message, message


def test_per_backend_tls_and_client_certificate_towards_the_server(start_tls_proxy, certs, ssl_postgres):
    # [proxy] says disable; [primary] overrides with verify-full and a client certificate (cert auth on the server).
    p = start_tls_proxy(
        primary={"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.path("ca.crt"),
                 "server_tls_cert_file": certs.path("client_sy_certuser.crt"),
                 "server_tls_key_file": certs.path("client_sy_certuser.key")},
        primary_host="localhost", primary_port=ssl_postgres.port, auth_type="trust",
        users={"sy_certuser": "unused", "sy_scram": PASSWORDS["sy_scram"]})
    with p.connect(user="sy_certuser", password="") as conn:
        assert conn.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())").fetchone() \
            == ("sy_certuser", True)


def test_health_probe_and_cancel_reach_a_tls_server(start_proxy, certs, ssl_postgres):
    p = start_proxy(primary_host="localhost", primary_port=ssl_postgres.port, health_check_user="sy_scram",
                    health_check_database="sydb", health_check_interval="200ms", log_level="debug", **server_tls(certs))
    deadline = time.monotonic() + 5
    while not any(row[1] == "switchyard health check" and row[2] for row in ssl_postgres.ssl_sessions()):
        assert time.monotonic() < deadline, f"no TLS health-check session: {ssl_postgres.ssl_sessions()}\n{p.log()[-2000:]}"
        time.sleep(0.1)
    assert "health check failed" not in p.log()
    with p.connect() as conn:
        # The proxy's CancelRequest to this server negotiates TLS like its other connections...
        assert cancel_during_sleep(conn, lambda c: c.cancel()) < 5
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    # ... and it did go over TLS, and the proxy saw Postgres close it (the cancel landed).
    assert any("cancel request delivered" in line and "tls=TLSv1.3/" in line for line in p.log().splitlines()), p.log()[-3000:]
    p.assert_alive()
