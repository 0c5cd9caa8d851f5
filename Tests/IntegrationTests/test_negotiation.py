"""SSLRequest and GSSENCRequest get 'N', and a normal startup then works on the same socket."""

import pytest

from pgwire import RawConn, data_rows, gssenc_request, ssl_request


def test_ssl_request_answered_n_then_startup(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(ssl_request())
        assert c.recv_exact(1) == b"N"
        c.login("sy_scram", "scram-pass")
        assert data_rows(c.simple_query("SELECT 1"))[0][0] == "1"


@pytest.mark.proxy_only  # Debian's Postgres is built with GSSAPI and may answer 'G'
def test_gssenc_request_answered_n_then_startup(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(gssenc_request())
        assert c.recv_exact(1) == b"N"
        c.login("sy_scram", "scram-pass")
        assert data_rows(c.simple_query("SELECT 1"))[0][0] == "1"


@pytest.mark.proxy_only
def test_gssenc_then_ssl_then_startup(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(gssenc_request())
        assert c.recv_exact(1) == b"N"
        c.send(ssl_request())
        assert c.recv_exact(1) == b"N"
        c.login("sy_scram", "scram-pass")
        assert data_rows(c.simple_query("SELECT 2"))[0][0] == "2"


def test_libpq_sslmode_prefer(proxy):
    """libpq's default: SSLRequest, 'N', plain startup."""
    with proxy.connect(sslmode="prefer") as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert conn.pgconn.ssl_in_use is False
