"""Fixtures for the integration tests: a shared PostgreSQL primary+replica (from scripts/test.sh's
environment, or started here with scripts/cluster.sh), and a factory that writes a proxy.conf +
userlist.txt into the test's tmp_path, starts the real switchyard binary on a free port, and
kills it at teardown.

Environment:
  SWITCHYARD_BIN      path to the built binary (required; tests FAIL without it)
  PRIMARY_PORT, REPLICA_PORT, PGHOST_SOCKET_DIR, PG_BIN
                      the cluster (scripts/cluster.sh's cluster.env); when unset a cluster is
                      started for the session and stopped at the end
  SWITCHYARD_TEST_DIRECT=1
                      self-check of the suite: "proxies" are the primary itself, no binary is
                      started, tests marked proxy_only are skipped
  SWITCHYARD_TEST_REFERENCE=pgbouncer
                      self-check of the suite: each "proxy" is Debian's PgBouncer with the same
                      settings (shows which tests describe behaviour PgBouncer also has)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncio

import asyncpg
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgwire import CANCEL_REQUEST_CODE  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DIRECT = os.environ.get("SWITCHYARD_TEST_DIRECT") == "1"
REFERENCE = os.environ.get("SWITCHYARD_TEST_REFERENCE", "")

# Passwords of the roles scripts/cluster.sh creates. sy_trust has none on the server (trust);
# the proxy's client side still asks for the userlist one when auth_type is md5/scram.
PASSWORDS = {
    "sy_scram": "scram-pass",
    "sy_md5": "md5-pass",
    "sy_trust": "trust-pass",
    "sy_admin": "admin-pass",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "proxy_only: behaviour of the proxy that Postgres itself does not have")


def pytest_collection_modifyitems(config, items):
    if DIRECT:
        skip = pytest.mark.skip(reason="SWITCHYARD_TEST_DIRECT=1: proxy-only behaviour")
        for item in items:
            if "proxy_only" in item.keywords:
                item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ---- the cluster ------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    primary_port: int
    replica_port: int
    socket_dir: str
    pg_bin: str

    def superuser(self, port: int | None = None, dbname: str = "sydb") -> psycopg.Connection:
        """postgres over the unix socket (hba: local trust), autocommit."""
        return psycopg.connect(
            host=self.socket_dir, port=port or self.primary_port, user="postgres", dbname=dbname, autocommit=True
        )

    def admin(self, dbname: str = "sydb") -> psycopg.Connection:
        """sy_admin (superuser) over TCP straight to the primary, autocommit."""
        return psycopg.connect(
            host="127.0.0.1", port=self.primary_port, user="sy_admin", password=PASSWORDS["sy_admin"],
            dbname=dbname, autocommit=True, sslmode="disable", connect_timeout=5,
        )

    def sql(self, query: str, params=None):
        """Runs one statement as postgres on the primary; returns all rows (or None)."""
        with self.superuser() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def scram_secret(self, user: str) -> str:
        return self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user,))[0][0]

    def ensure_role(self, name: str, password: str) -> None:
        """A SCRAM login role (idempotent), for tests that need a user of their own."""
        with self.superuser() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            conn.execute("SET password_encryption = 'scram-sha-256'")
            verb = "ALTER" if exists else "CREATE"
            conn.execute(f"{verb} ROLE {name} LOGIN PASSWORD '{password}'")


@pytest.fixture(scope="session")
def cluster():
    env = os.environ
    if env.get("PRIMARY_PORT") and env.get("PGHOST_SOCKET_DIR"):
        yield Cluster(
            int(env["PRIMARY_PORT"]), int(env.get("REPLICA_PORT", "0")), env["PGHOST_SOCKET_DIR"],
            env.get("PG_BIN", "/usr/lib/postgresql/15/bin"),
        )
        return
    d = tempfile.mkdtemp(prefix="sy-it-")
    os.chmod(d, 0o755)
    script = REPO_ROOT / "scripts" / "cluster.sh"
    r = subprocess.run([str(script), "start", d], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"scripts/cluster.sh start failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    vals = dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)
    try:
        yield Cluster(int(vals["PRIMARY_PORT"]), int(vals["REPLICA_PORT"]), vals["PGHOST_SOCKET_DIR"], vals["PG_BIN"])
    finally:
        subprocess.run([str(script), "stop", d], capture_output=True)


@pytest.fixture(scope="session")
def pg_bin(cluster) -> str:
    """Directory of psql/pgbench."""
    return cluster.pg_bin if os.path.exists(os.path.join(cluster.pg_bin, "psql")) else os.path.dirname(shutil.which("psql"))


# ---- the binary -------------------------------------------------------------------------


def switchyard_bin() -> str:
    """The binary under test; fails (never skips) the calling test when it is missing."""
    path = os.environ.get("SWITCHYARD_BIN", "")
    if not path:
        pytest.fail("SWITCHYARD_BIN is not set (scripts/test.sh sets it to the built binary)", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"SWITCHYARD_BIN={path} is not an executable file (did swift build succeed?)", pytrace=False)
    return path


# ---- the proxy --------------------------------------------------------------------------


@dataclasses.dataclass
class Proxy:
    port: int
    config_path: Path
    userlist_path: Path
    log_path: Path
    process: subprocess.Popen | None
    host: str = "127.0.0.1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log(self) -> str:
        """Everything the proxy wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def assert_alive(self) -> None:
        assert self.alive(), f"switchyard exited with {self.process.returncode}; log:\n{self.log()[-4000:]}"
        assert port_accepts(self.port), f"switchyard no longer accepts on {self.port}; log:\n{self.log()[-4000:]}"

    def conninfo(self, user: str = "sy_scram", password: str | None = None, dbname: str = "sydb", **kw) -> dict:
        info = dict(
            host=self.host, port=self.port, user=user, dbname=dbname,
            password=PASSWORDS.get(user, "") if password is None else password,
            sslmode="disable", gssencmode="disable", connect_timeout=10,
        )
        info.update(kw)
        return info

    def connect(self, user: str = "sy_scram", password: str | None = None, autocommit: bool = True, **kw) -> psycopg.Connection:
        return psycopg.connect(autocommit=autocommit, **self.conninfo(user, password, **kw))

    def login_error(self, user: str = "sy_scram", password: str | None = None, **kw) -> tuple[str | None, str]:
        """(sqlstate, message) of a failed login, via asyncpg: libpq (psycopg) does not expose the
        SQLSTATE of an error received during connection startup. Fails the test if login works."""
        pw = PASSWORDS.get(user, "") if password is None else password

        async def attempt():
            conn = await asyncpg.connect(
                host=self.host, port=self.port, user=user, password=pw, database=kw.get("dbname", "sydb"),
                ssl=False, timeout=10,
            )
            await conn.fetchval("SELECT 1")
            await conn.close()

        try:
            asyncio.run(attempt())
        except asyncpg.PostgresError as e:
            return e.sqlstate, str(e)
        pytest.fail(f"login as {user} succeeded but was expected to fail")

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in the proxy log after {timeout}s:\n{self.log()[-4000:]}")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def in_thread(fn):
    """Runs fn in a daemon thread: (thread, box) where box gets "value" or "error" when it ends."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


class DelayingRelay:
    """A TCP relay to 127.0.0.1:`target`. Connections pass through as they are, except that while `delay` is
    set a new one waits that long before it is connected on: a slow network for the cancel requests the proxy
    opens after its server connections are up. close() stops accepting (relayed connections run on)."""

    def __init__(self, target: int):
        self.target = target
        self.delay = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn, self.delay), daemon=True).start()

    def _relay(self, conn: socket.socket, delay: float) -> None:
        if delay:
            time.sleep(delay)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=self._pump, args=(upstream, conn), daemon=True)
        back.start()
        self._pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        """Copies until EOF, then passes the EOF on."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def delaying_relay(cluster):
    """A DelayingRelay to the primary."""
    relay = DelayingRelay(cluster.primary_port)
    yield relay
    relay.close()


def send_cancel(p, backend_key: tuple[int, int]) -> None:
    """A CancelRequest with `backend_key` (what the client got in BackendKeyData), to proxy `p`."""
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(struct.pack("!iiii", 16, CANCEL_REQUEST_CODE, *backend_key))


def run_and_cancel(conn: psycopg.Connection, sql: str = "SELECT pg_sleep(30)", delay: float = 0.5) -> tuple[str, float]:
    """Runs `sql` on `conn` in a thread and cancels it (a CancelRequest on a new connection) after `delay`
    seconds: the outcome ("57014", "finished" or the error) and the seconds from the cancel to the end."""
    result: dict[str, str] = {}

    def run():
        try:
            conn.execute(sql)
            result["outcome"] = "finished"
        except psycopg.errors.QueryCanceled as e:
            result["outcome"] = e.sqlstate
        except Exception as e:  # noqa: BLE001 - reported to the caller
            result["outcome"] = repr(e)

    th = threading.Thread(target=run)
    th.start()
    time.sleep(delay)
    t_cancel = time.monotonic()
    conn.cancel()
    th.join(10)
    assert not th.is_alive(), "query still running 10 s after cancel"
    return result.get("outcome", ""), time.monotonic() - t_cancel


def write_userlist(path: Path, users: dict[str, str]) -> None:
    lines = [f'"{u}" "{s}"' for u, s in users.items()]
    path.write_text("\n".join(lines) + "\n")


def render_config(
    port: int, userlist: Path, primary_port: int, auth_type: str, replica_port: int | None, settings: dict,
    primary_host: str = "127.0.0.1",
) -> str:
    proxy = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "pool_mode": "session",
        "auth_type": auth_type,
        "auth_file": str(userlist),
        "default_pool_size": "20",
        "max_client_conn": "1000",
        "server_reset_query": "DISCARD ALL",
        "admin_users": "sy_admin",
        "log_level": "info",
        "server_connect_timeout": "5s",
        "client_login_timeout": "60s",
        "query_wait_timeout": "120s",
        "max_packet_size": "1GB",
    }
    proxy.update({k: str(v) for k, v in settings.items()})
    out = ["[proxy]"] + [f"{k} = {v}" for k, v in proxy.items()]
    out += ["", "[primary]", f"host = {primary_host}", f"port = {primary_port}"]
    if replica_port:
        out += ["", "[replica.r1]", "host = 127.0.0.1", f"port = {replica_port}", "weight = 1"]
    return "\n".join(out) + "\n"


@pytest.fixture
def start_proxy(cluster, tmp_path):
    """Factory: start_proxy(auth_type=..., users={user: secret}, primary_port=..., primary_host=...,
    replica=False,
    wait=True, **proxy_settings) -> Proxy. Every proxy is stopped at teardown."""
    started: list[Proxy] = []
    counter = iter(range(1000))

    def start(
        auth_type: str = "scram-sha-256",
        users: dict[str, str] | None = None,
        primary_port: int | None = None,
        primary_host: str = "127.0.0.1",
        replica: bool = False,
        wait: bool = True,
        **settings,
    ) -> Proxy:
        n = next(counter)
        userlist = tmp_path / f"userlist{n}.txt"
        config = tmp_path / f"proxy{n}.conf"
        log = tmp_path / f"switchyard{n}.log"
        write_userlist(userlist, dict(PASSWORDS) if users is None else users)
        if DIRECT:
            p = Proxy(cluster.primary_port, config, userlist, log, None)
            started.append(p)
            return p
        if REFERENCE == "pgbouncer":
            p = start_pgbouncer(
                userlist, auth_type, primary_host, primary_port or cluster.primary_port, settings,
                DIRECT_USERS if users is None else users,
            )
            started.append(p)
            return p
        binary = switchyard_bin()
        port = free_port()
        config.write_text(
            render_config(
                port, userlist, primary_port or cluster.primary_port, auth_type,
                cluster.replica_port if replica else None, settings, primary_host,
            )
        )
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [binary, "--config", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=tmp_path,
            )
        p = Proxy(port, config, userlist, log, proc)
        started.append(p)
        if wait:
            deadline = time.monotonic() + 15
            while not port_accepts(port):
                if proc.poll() is not None:
                    pytest.fail(f"switchyard exited with {proc.returncode} before listening; log:\n{p.log()[-4000:]}", pytrace=False)
                if time.monotonic() > deadline:
                    pytest.fail(f"switchyard did not listen on {port} within 15 s; log:\n{p.log()[-4000:]}", pytrace=False)
                time.sleep(0.05)
        return p

    yield start
    for p in started:
        p.stop()
        if p.config_path.parent.name.startswith("sy-pgb-"):
            shutil.rmtree(p.config_path.parent, ignore_errors=True)


DIRECT_USERS = dict(PASSWORDS)


def _pgb_value(key: str, value: str) -> str:
    """Switchyard's unit suffixes -> PgBouncer's plain numbers (seconds, bytes)."""
    import re

    m = re.fullmatch(r"(\d+)\s*(ms|s|min|kB|MB|GB)?", value)
    if not m or key in ("listen_port", "default_pool_size", "max_client_conn"):
        return value
    n, unit = int(m.group(1)), m.group(2)
    scale = {None: 1, "s": 1, "min": 60, "kB": 1024, "MB": 1 << 20, "GB": 1 << 30}
    if unit == "ms":
        return str(max(1, n // 1000))
    return str(min(n * scale[unit], 2147483647))


def start_pgbouncer(userlist_src, auth_type, host, port, settings, users) -> Proxy:
    """Reference mode: PgBouncer as the system under test (runs as postgres: it refuses root)."""
    d = Path(tempfile.mkdtemp(prefix="sy-pgb-"))
    os.chmod(d, 0o755)
    write_userlist(d / "userlist.txt", users)
    listen = free_port()
    ini = {
        "listen_addr": "127.0.0.1", "listen_port": str(listen), "unix_socket_dir": "", "auth_type": auth_type,
        "auth_file": str(d / "userlist.txt"), "pool_mode": "session", "default_pool_size": "20",
        "max_client_conn": "1000", "server_reset_query": "DISCARD ALL", "admin_users": "sy_admin",
        "server_connect_timeout": "5", "server_login_retry": "1", "max_packet_size": "1073741824",
    }
    for k, v in settings.items():
        if k in ("client_login_timeout", "query_wait_timeout", "server_connect_timeout", "max_packet_size",
                 "default_pool_size", "max_client_conn", "server_reset_query"):
            ini[k] = _pgb_value(k, str(v))
    text = f"[databases]\nsydb = host={host} port={port} dbname=sydb\n\n[pgbouncer]\n"
    text += "".join(f"{k} = {v}\n" for k, v in ini.items())
    (d / "pgbouncer.ini").write_text(text)
    log = d / "pgbouncer.log"
    cmd = ["pgbouncer", str(d / "pgbouncer.ini")]
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", "postgres:", str(d)], check=True)
        cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
    p = Proxy(listen, d / "pgbouncer.ini", d / "userlist.txt", log, proc)
    deadline = time.monotonic() + 10
    while not port_accepts(listen):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"pgbouncer did not start:\n{p.log()}", pytrace=False)
        time.sleep(0.05)
    return p


@pytest.fixture
def proxy(start_proxy) -> Proxy:
    """A proxy with the defaults: scram-sha-256 clients, plaintext userlist, primary only."""
    return start_proxy()


def pg_env(proxy: Proxy, user: str = "sy_scram") -> dict:
    """Environment for psql/pgbench against the proxy."""
    env = dict(os.environ)
    env.update(PGHOST=proxy.host, PGPORT=str(proxy.port), PGUSER=user, PGDATABASE="sydb",
               PGPASSWORD=PASSWORDS[user], PGCONNECT_TIMEOUT="10")
    return env


# ---- extra config sections and fd limits (used by the transaction-pooling tests) ---------


def render_sections(sections: dict[str, dict]) -> str:
    """`{"user.sy_md5": {"pool_mode": "session"}}` -> "\n[user.sy_md5]\npool_mode = session\n"."""
    out = []
    for name, keys in sections.items():
        out += ["", f"[{name}]"] + [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(out) + "\n"


@pytest.fixture
def start_proxy_sections(start_proxy):
    """Like start_proxy, plus sections={"user.NAME": {"pool_size": 1, ...}}: extra sections
    appended to proxy.conf (ignored in the DIRECT and PgBouncer reference modes)."""

    def start(sections: dict[str, dict] | None = None, **kw) -> Proxy:
        g = globals()
        base = g["render_config"]
        if sections:
            g["render_config"] = lambda *a, **k: base(*a, **k) + render_sections(sections)
        try:
            return start_proxy(**kw)
        finally:
            g["render_config"] = base

    return start


def raise_fd_limit(want: int) -> int:
    """Raises this process's soft RLIMIT_NOFILE towards `want` (never above the hard limit) and
    returns the new soft limit. A proxy started afterwards inherits it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def process_fd_limit(pid: int) -> int:
    """The soft "Max open files" of a running process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                return 1 << 62 if v == "unlimited" else int(v)
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


# ---- extra streaming replicas (used by the read/write-splitting tests) -------------------


def as_postgres(cmd: list[str]) -> list[str]:
    """cmd run as the postgres OS user when we are root (Postgres refuses root), like cluster.sh's as_pg."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


@dataclasses.dataclass
class StandbyReplica:
    """A hot standby made by pg_basebackup from the cluster's primary, on its own port and in its own
    temp dir (data dir, unix socket, log). stop()/start() let tests take it down and bring it back."""

    name: str
    port: int
    base_dir: Path
    pg_bin: str

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = as_postgres([os.path.join(self.pg_bin, "pg_ctl"), "-D", str(self.data_dir), *args])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode != 0:
            pytest.fail(f"pg_ctl {' '.join(args)} for replica {self.name} failed:\n{r.stdout}\n{r.stderr}\n"
                        f"{self.log_tail()}", pytrace=False)
        return r

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists() and self._pg_ctl("status", check=False).returncode == 0

    def superuser(self, dbname: str = "sydb") -> psycopg.Connection:
        return psycopg.connect(host=str(self.base_dir), port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=5)

    def start(self, timeout: float = 30.0) -> None:
        """Starts it (if stopped) and waits until its WAL receiver is streaming."""
        if not self.running():
            self._pg_ctl("-l", str(self.log_path), "-w", "-t", "60", "start")
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            try:
                with self.superuser() as c:
                    row = c.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
                    status = row[0] if row else None
                if status == "streaming":
                    return
            except psycopg.Error:
                pass
            time.sleep(0.1)
        pytest.fail(f"replica {self.name} is not streaming after {timeout}s (status {status}):\n{self.log_tail()}",
                    pytrace=False)

    def stop(self) -> None:
        """Immediate shutdown, like a crash."""
        if self.running():
            self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", check=False)

    def wait_replayed(self, lsn: str, timeout: float = 10.0) -> None:
        """Waits until this replica has replayed the primary's WAL up to `lsn`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.superuser() as c:
                if c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    return
            time.sleep(0.05)
        pytest.fail(f"replica {self.name} did not replay up to {lsn} within {timeout}s", pytrace=False)


@pytest.fixture(scope="module")
def second_replica(cluster):
    """Factory (module scope): second_replica(name, apply_delay=None) -> StandbyReplica, a new
    streaming replica of the cluster's primary (recovery_min_apply_delay = apply_delay when given).
    All replicas it made are stopped and removed at the end of the module."""
    made: list[StandbyReplica] = []

    def make(name: str, apply_delay: str | None = None) -> StandbyReplica:
        base = Path(tempfile.mkdtemp(prefix=f"sy-{name}-"))
        os.chmod(base, 0o755)
        if os.getuid() == 0:
            subprocess.run(["chown", "postgres:", str(base)], check=True)
        rep = StandbyReplica(name, free_port(), base, cluster.pg_bin)
        made.append(rep)
        cmd = as_postgres([
            os.path.join(cluster.pg_bin, "pg_basebackup"), "-D", str(rep.data_dir), "-h", cluster.socket_dir,
            "-p", str(cluster.primary_port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
        ])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"pg_basebackup for replica {name} failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
        extra = [
            "", f"# ---- extra replica {name} ----", f"port = {rep.port}",
            f"unix_socket_directories = '{base}'", f"cluster_name = 'sy_{name}'",
        ]
        if apply_delay:
            extra.append(f"recovery_min_apply_delay = '{apply_delay}'")
        subprocess.run(as_postgres(["tee", "-a", str(rep.data_dir / "postgresql.conf")]),
                       input="\n".join(extra) + "\n", text=True, stdout=subprocess.DEVNULL, check=True)
        rep.start()
        return rep

    yield make
    for rep in made:
        rep.stop()
        shutil.rmtree(rep.base_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def replica_fast(second_replica) -> StandbyReplica:
    """An extra streaming replica without apply delay (module scope)."""
    return second_replica("fast")


@pytest.fixture(scope="module")
def replica_delayed(second_replica) -> StandbyReplica:
    """An extra streaming replica that applies WAL 500 ms late (recovery_min_apply_delay)."""
    return second_replica("delayed", apply_delay="500ms")
