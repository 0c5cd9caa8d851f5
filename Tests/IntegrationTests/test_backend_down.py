"""A primary that is down: the client gets 08006/08001 quickly with a message naming the backend,
and the proxy keeps running."""

import time

import psycopg
import pytest

from conftest import free_port

pytestmark = pytest.mark.proxy_only


def test_primary_down_fails_fast(start_proxy):
    dead_port = free_port()  # nothing listens there
    p = start_proxy(primary_port=dead_port)
    for attempt in range(2):
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            p.connect().execute("SELECT 1")
        elapsed = time.monotonic() - t0
        assert elapsed < 5, f"attempt {attempt}: took {elapsed:.1f}s"
        t0 = time.monotonic()
        sqlstate, msg = p.login_error()
        assert time.monotonic() - t0 < 5
        assert sqlstate in ("08006", "08001"), f"sqlstate {sqlstate}: {msg}"
        assert str(dead_port) in msg or "primary" in msg.lower(), f"message does not name the backend: {msg}"
        p.assert_alive()
    assert str(dead_port) in p.log() or "primary" in p.log().lower(), p.log()[-2000:]


def test_connect_timeout_to_unroutable_backend(start_proxy):
    """A backend address that never answers (TEST-NET-1; in a sandbox it may also fail at once
    with 'network unreachable'): the client hears within server_connect_timeout plus slack."""
    p = start_proxy(primary_host="192.0.2.1", primary_port=5432, server_connect_timeout="1s")
    t0 = time.monotonic()
    sqlstate, msg = p.login_error()
    elapsed = time.monotonic() - t0
    assert elapsed < 4, f"took {elapsed:.1f}s with server_connect_timeout = 1s"
    assert sqlstate in ("08006", "08001"), f"sqlstate {sqlstate}: {msg}"
    p.assert_alive()
