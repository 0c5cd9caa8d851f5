"""10,000 clients logged in at once through a transaction-mode pool of 5: every one runs a query,
and the proxy's memory per idle client stays small."""

from __future__ import annotations

import asyncio
import os
import struct
import time

import pytest

from conftest import process_fd_limit, raise_fd_limit
from pgwire import error_fields, query, startup_packet, terminate

pytestmark = pytest.mark.proxy_only

CLIENTS = 10_000
LOGIN_CONCURRENCY = 256
# Bound on the proxy's resident memory per logged-in client. Measured with this test: switchyard
# (debug build) 1.8 KB per idle client and 2.2 KB after one query each; PgBouncer 1.18 0.8 KB and
# 3.4 KB. 8 KB leaves 4x headroom and still catches a per-client buffer of 8 KB or more kept around.
MAX_KB_PER_CLIENT = 8
LOGIN_BUDGET_S = 60
QUERY_BUDGET_S = 30


async def gather_within(coros, budget: float, what: str) -> list:
    """Runs all `coros`; fails (naming how many finished) when they are not all done in `budget` s."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    done, pending = await asyncio.wait(tasks, timeout=budget)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        ok = sum(1 for t in done if t.exception() is None)
        raise AssertionError(f"{what}: only {ok} of {len(tasks)} finished within {budget} s")
    return [t.exception() or t.result() for t in tasks]


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    (length,) = struct.unpack("!i", head[1:5])
    return head[:1], await reader.readexactly(length - 4)


async def read_until_ready(reader: asyncio.StreamReader) -> list[tuple[bytes, bytes]]:
    out = []
    while True:
        kind, payload = await read_message(reader)
        out.append((kind, payload))
        if kind == b"Z":
            return out


async def login(host: str, port: int, sem: asyncio.Semaphore):
    """Trust login as sy_trust up to ReadyForQuery; returns the open stream pair."""
    async with sem:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(startup_packet("sy_trust", "sydb"))
        msgs = await asyncio.wait_for(read_until_ready(reader), 60)
        for kind, payload in msgs:
            if kind == b"E":
                raise AssertionError(f"login failed: {error_fields(payload)}")
        assert msgs[0] == (b"R", struct.pack("!i", 0)), msgs[:2]
        return reader, writer


async def select_one(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(query(f"SELECT {i}"))
    msgs = await asyncio.wait_for(read_until_ready(reader), 60)
    kinds = [k for k, _ in msgs]
    assert kinds == [b"T", b"D", b"C", b"Z"], (i, msgs)
    payload = msgs[1][1]
    (n,) = struct.unpack("!i", payload[2:6])
    assert payload[6 : 6 + n] == str(i).encode(), (i, payload)


def test_ten_thousand_clients_pool_of_five(start_proxy):
    limit = raise_fd_limit(CLIENTS * 2 + 1000)
    assert limit >= CLIENTS + 500, f"this process may open only {limit} files; {CLIENTS} clients need more"
    p = start_proxy(
        auth_type="trust", pool_mode="transaction", default_pool_size=5, max_client_conn=CLIENTS + 100,
        log_level="warning",
    )
    proxy_limit = process_fd_limit(p.pid)
    print(f"\nproxy fd limit: {proxy_limit}")
    assert proxy_limit >= CLIENTS + 100, f"the proxy may open only {proxy_limit} files"

    async def main():
        sem = asyncio.Semaphore(LOGIN_CONCURRENCY)
        # Warm up: the pool exists and its servers are open before the baseline is taken.
        warm = [await login(p.host, p.port, sem) for _ in range(5)]
        await asyncio.gather(*(select_one(i, r, w) for i, (r, w) in enumerate(warm)))
        for _, w in warm:
            w.write(terminate())
            w.close()
        await asyncio.sleep(0.5)
        rss_before = p.rss_kb()

        t0 = time.monotonic()
        results = await gather_within((login(p.host, p.port, sem) for _ in range(CLIENTS)), LOGIN_BUDGET_S, "logins")
        t_login = time.monotonic() - t0
        failed = [r for r in results if isinstance(r, BaseException)]
        conns = [r for r in results if not isinstance(r, BaseException)]
        try:
            assert not failed, f"{len(failed)} of {CLIENTS} logins failed, e.g. {failed[:3]!r}"
            await asyncio.sleep(0.5)
            rss_logged_in = p.rss_kb()
            open_fds = len(os.listdir(f"/proc/{p.pid}/fd"))
            assert open_fds >= CLIENTS, f"the proxy holds {open_fds} fds with {CLIENTS} clients logged in"

            t1 = time.monotonic()
            outcomes = await gather_within(
                (select_one(i, r, w) for i, (r, w) in enumerate(conns)), QUERY_BUDGET_S, "queries"
            )
            t_query = time.monotonic() - t1
            bad = [o for o in outcomes if isinstance(o, BaseException)]
            assert not bad, f"{len(bad)} of {CLIENTS} queries failed, e.g. {bad[:3]!r}"
            rss_after = p.rss_kb()
        finally:
            for _, w in conns:
                try:
                    w.write(terminate())
                    w.close()
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    pass
        return rss_before, rss_logged_in, rss_after, t_login, t_query

    rss_before, rss_logged_in, rss_after, t_login, t_query = asyncio.run(main())
    per_client = (rss_logged_in - rss_before) / CLIENTS
    per_client_after = (rss_after - rss_before) / CLIENTS
    print(
        f"{CLIENTS} clients: logins {t_login:.1f}s, queries {t_query:.1f}s; proxy RSS {rss_before} KB idle, "
        f"{rss_logged_in} KB logged in ({per_client:.1f} KB/client), {rss_after} KB after one query each "
        f"({per_client_after:.1f} KB/client)"
    )
    assert per_client < MAX_KB_PER_CLIENT, f"{per_client:.1f} KB per idle client"
    assert per_client_after < MAX_KB_PER_CLIENT, f"{per_client_after:.1f} KB per client after a query"
    p.assert_alive()
