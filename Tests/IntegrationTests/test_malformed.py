"""Malformed input on raw sockets. Where a reply is possible the proxy sends an ErrorResponse
with SQLSTATE 08P01 (protocol_violation) and closes; in every case it keeps serving others.
Also SSLRequest / GSSENCRequest answered with 'N' (no TLS/GSS here)."""

import struct

import pytest

from pgwire import RawConn, first_error, message, query, startup_packet

pytestmark = pytest.mark.proxy_only


def assert_still_serving(proxy):
    if proxy.process:
        proxy.assert_alive()
    with proxy.connect() as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def assert_protocol_violation(data: bytes, closed: bool, what: str):
    assert data[:1] == b"E", f"{what}: expected ErrorResponse first, got {data[:64]!r}"
    err = first_error(data)
    assert err is not None, f"{what}: unparsable reply {data[:128]!r}"
    assert err.get("C") == "08P01", f"{what}: {err}"
    assert closed, f"{what}: connection left open after the error"


STARTUP_CASES = {
    "length > 10000": struct.pack("!ii", 20000, 196608) + b"user\0sy_scram\0\0",
    "length absurd": struct.pack("!ii", 0x7FFFFFF0, 196608),
    "length negative": struct.pack("!ii", -8, 196608),
    "length too small": struct.pack("!i", 4) + b"\0\0\0\0",
    "length 7": struct.pack("!i", 7) + b"\0\3\0\0",  # 8 bytes sent, so the header is complete
    "protocol 2.0": startup_packet("sy_scram", protocol=0x00020000),
    "protocol 4.0": startup_packet("sy_scram", protocol=0x00040000),
    "http garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", list(STARTUP_CASES))
def test_bad_startup(proxy, case):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(STARTUP_CASES[case])
        data, closed = c.read_until_eof(timeout=3)
    assert_protocol_violation(data, closed, case)
    assert_still_serving(proxy)


def logged_in(proxy) -> RawConn:
    c = RawConn(proxy.host, proxy.port)
    c.login("sy_scram", "scram-pass")
    return c


REGULAR_CASES = {
    "negative length": b"Q" + struct.pack("!i", -1),
    "length 0": b"Q" + struct.pack("!i", 0),
    "length 3": b"Q" + struct.pack("!i", 3),
    "length > max_packet_size": b"Q" + struct.pack("!i", 0x7FFFFFF0) + b"SELECT ",
}


@pytest.mark.parametrize("case", list(REGULAR_CASES))
def test_bad_regular_message_after_login(proxy, case):
    with logged_in(proxy) as c:
        assert c.simple_query("SELECT 1")[-1][0] == b"Z"
        c.send(REGULAR_CASES[case])
        data, closed = c.read_until_eof(timeout=3)
    assert_protocol_violation(data, closed, case)
    assert_still_serving(proxy)


def test_message_over_configured_max_packet_size(start_proxy):
    p = start_proxy(max_packet_size="64kB")
    with logged_in(p) as c:
        c.send(b"Q" + struct.pack("!i", 1_000_000) + b"SELECT '")
        data, closed = c.read_until_eof(timeout=3)
    assert_protocol_violation(data, closed, "1 MB message with max_packet_size = 64kB")
    assert_still_serving(p)


def test_disconnect_mid_startup(proxy):
    pkt = startup_packet("sy_scram")
    for _ in range(3):
        with RawConn(proxy.host, proxy.port) as c:
            c.send(pkt[: len(pkt) // 2])
    assert_still_serving(proxy)


def test_disconnect_mid_message(proxy):
    for _ in range(3):
        c = logged_in(proxy)
        c.send(b"Q" + struct.pack("!i", 100) + b"SELECT 1")  # 8 of 96 payload bytes
        c.close()
    with logged_in(proxy) as c:
        c.send(query("SELECT 1")[:3])  # just a partial header
    assert_still_serving(proxy)


def test_disconnect_mid_auth(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(startup_packet("sy_scram"))
        kind, _ = c.read_message()
        assert kind == b"R"
        c.send(message(b"p", b"SCRAM-SHA-256\0")[:9])
    assert_still_serving(proxy)


def test_terminate_then_more_bytes(proxy):
    with logged_in(proxy) as c:
        c.send(message(b"X") + query("SELECT 1"))
        data, closed = c.read_until_eof(timeout=3)
        assert closed
        assert b"Z" not in data[:1]
    assert_still_serving(proxy)


def test_unknown_message_type(proxy):
    with logged_in(proxy) as c:
        c.send(message(b"!", b"hello"))
        data, closed = c.read_until_eof(timeout=3)
    err = first_error(data)
    assert err is not None and err.get("C") == "08P01", data[:200]
    assert_still_serving(proxy)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
@pytest.mark.parametrize("payload", [b"", b"SELECT 1"], ids=["empty", "no-terminator"])
def test_query_without_its_terminating_nul(start_proxy, pool_mode, payload):
    """A Query whose text lacks the NUL (or is empty) is not a crash: the fingerprint of its text is taken
    without a last byte that is not there, the client gets an error, and the proxy goes on."""
    p = start_proxy(pool_mode=pool_mode)
    with logged_in(p) as c:
        assert c.simple_query("SELECT 1")[-1][0] == b"Z"
        c.send(b"Q" + struct.pack("!i", 4 + len(payload)) + payload)
        data, _ = c.read_until_eof(timeout=3)
    assert data[:1] == b"E", data[:64]
    assert_still_serving(p)
