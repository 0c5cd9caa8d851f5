#!/usr/bin/env python3
"""Memory per idle client connection, PgBouncer beside Switchyard in one run: N raw sockets log in (trust auth,
transaction pooling, a pool of 5) and stay idle; the proxy's RSS growth divided by N is the figure. Then each
client runs one query and the RSS is read again.

Usage: bench/idle_memory.py [--clients 10000] [--switchyard BIN] [--workers 1] [--pace 0] (needs a running cluster: PRIMARY_PORT, and
pgbouncer on PATH; run as root it starts PgBouncer as postgres).
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def startup(user: str, db: str) -> bytes:
    body = struct.pack("!i", 196608) + f"user\0{user}\0database\0{db}\0\0".encode()
    return struct.pack("!i", len(body) + 4) + body


def query(sql: str) -> bytes:
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", len(body) + 4) + body


def wait_all(socks: list[socket.socket], needle: bytes, timeout: float) -> None:
    """Reads from every socket until each has seen ReadyForQuery (`needle` = b"Z")."""
    pending = {s.fileno(): (s, b"") for s in socks}
    deadline = time.monotonic() + timeout
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(1.0):
            if fd not in pending:
                continue
            s, buf = pending[fd]
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"connection closed; got {buf[-200:]!r}")
            buf += data
            if (needle + b"\0\0\0\x05I") in buf:
                poller.unregister(fd)
                del pending[fd]
            else:
                pending[fd] = (s, buf)
    poller.close()
    if pending:
        raise RuntimeError(f"{len(pending)} clients did not get ReadyForQuery in {timeout}s")


def measure(name: str, port: int, pid: int, clients: int, pace: float = 0.0) -> dict:
    time.sleep(0.5)
    before = rss_kb(pid)
    socks = []
    for i in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(startup("sy_trust", "sydb"))
        socks.append(s)
        if len(socks) % 500 == 0:
            wait_all(socks[-500:], b"Z", 60)
            time.sleep(pace)
    wait_all(socks[len(socks) - len(socks) % 500:], b"Z", 60)
    time.sleep(2.0)  # idle: Switchyard parks a client's buffers after a second between transactions
    logged_in = rss_kb(pid)
    for s in socks:
        s.sendall(query("SELECT 1"))
    wait_all(socks, b"Z", 120)
    time.sleep(0.5)
    after = rss_kb(pid)
    for s in socks:
        s.close()
    return {"target": name, "clients": clients, "rss_before_kb": before,
            "idle_kb_per_client": (logged_in - before) / clients, "after_query_kb_per_client": (after - before) / clients}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--switchyard", default=os.environ.get("SWITCHYARD_BIN", ""))
    ap.add_argument("--workers", type=int, default=1, help="Switchyard's workers (0: one per core)")
    ap.add_argument("--pace", type=float, default=0.0,
                    help="seconds to wait after each 500 logins (0: as fast as they go; 0.5: clients arrive over time "
                         "and Switchyard's parked clients give their buffers to the next ones)")
    args = ap.parse_args()
    primary = int(os.environ["PRIMARY_PORT"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 3 * args.clients + 1000)), hard))
    work = tempfile.mkdtemp(prefix="sy-mem-")
    os.chmod(work, 0o755)
    with open(f"{work}/userlist.txt", "w") as f:
        f.write('"sy_trust" ""\n')
    results = []
    procs = []
    try:
        if shutil.which("pgbouncer"):
            port = free_port()
            with open(f"{work}/pgbouncer.ini", "w") as f:
                f.write(f"[databases]\nsydb = host=127.0.0.1 port={primary} dbname=sydb\n[pgbouncer]\n"
                        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\n"
                        f"auth_file = {work}/userlist.txt\npool_mode = transaction\ndefault_pool_size = 5\n"
                        f"max_client_conn = {args.clients + 100}\nlog_connections = 0\nlog_disconnections = 0\n")
            cmd = ["pgbouncer", f"{work}/pgbouncer.ini"]
            if os.getuid() == 0:
                shutil.chown(work, "postgres")
                for n in ("pgbouncer.ini", "userlist.txt"):
                    shutil.chown(f"{work}/{n}", "postgres")
                cmd = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + cmd
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            time.sleep(1)
            results.append(measure("pgbouncer", port, p.pid, args.clients, args.pace))
            p.terminate()
        if args.switchyard:
            port = free_port()
            with open(f"{work}/proxy.conf", "w") as f:
                f.write(f"[proxy]\nlisten_port = {port}\nauth_type = trust\nauth_file = {work}/userlist.txt\n"
                        f"pool_mode = transaction\ndefault_pool_size = 5\nmax_client_conn = {args.clients + 100}\n"
                        f"workers = {args.workers}\nlog_level = warning\n[primary]\nhost = 127.0.0.1\nport = {primary}\n")
            p = subprocess.Popen([args.switchyard, "--config", f"{work}/proxy.conf"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            procs.append(p)
            time.sleep(1)
            results.append(measure("switchyard", port, p.pid, args.clients, args.pace))
            p.terminate()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    base = next((r for r in results if r["target"] == "pgbouncer"), None)
    print(f"| target | clients | KB per idle client | KB per client after one query | idle vs PgBouncer |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        ratio = f"{r['idle_kb_per_client'] / base['idle_kb_per_client']:.2f}" if base else "—"
        print(f"| {r['target']} | {r['clients']:,} | {r['idle_kb_per_client']:.2f} | {r['after_query_kb_per_client']:.2f} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
