"""Raw PostgreSQL wire-protocol helpers for the integration tests: build frames, read replies,
pull the SQLSTATE out of an ErrorResponse, and log in (trust, cleartext, md5, SCRAM-SHA-256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 196608  # 0x00030000
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


class ProtocolError(Exception):
    pass


class ServerError(Exception):
    """An ErrorResponse received where the test expected success."""

    def __init__(self, fields: dict[str, str]):
        super().__init__(f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')}")
        self.fields = fields
        self.sqlstate = fields.get("C")


# ---- building frames --------------------------------------------------------------------


def startup_packet(user: str, database: str = "sydb", protocol: int = PROTOCOL_3_0, **params: str) -> bytes:
    body = struct.pack("!i", protocol)
    for k, v in {"user": user, "database": database, **params}.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def message(kind: bytes, payload: bytes = b"") -> bytes:
    """A regular (typed) frontend message."""
    return kind + struct.pack("!i", len(payload) + 4) + payload


def query(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\0")


def terminate() -> bytes:
    return message(b"X")


def function_call(oid: int, args: list[bytes | None], result_format: int = 0) -> bytes:
    """FunctionCall ('F'), all arguments in text format."""
    payload = struct.pack("!i", oid) + struct.pack("!hh", 1, 0) + struct.pack("!h", len(args))
    for a in args:
        payload += struct.pack("!i", -1) if a is None else struct.pack("!i", len(a)) + a
    payload += struct.pack("!h", result_format)
    return message(b"F", payload)


# ---- parsing replies --------------------------------------------------------------------


def parse_messages(data: bytes) -> list[tuple[bytes, bytes]]:
    """Splits backend bytes into (type, payload) pairs; a trailing partial frame is dropped.
    A lone 'N'/'S' byte (the answer to SSLRequest/GSSENCRequest) is not a frame: strip it first."""
    out = []
    i = 0
    while i + 5 <= len(data):
        kind = data[i : i + 1]
        (length,) = struct.unpack("!i", data[i + 1 : i + 5])
        if length < 4 or i + 1 + length > len(data):
            break
        out.append((kind, data[i + 5 : i + 1 + length]))
        i += 1 + length
    return out


def error_fields(payload: bytes) -> dict[str, str]:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def sqlstate_of(data: bytes) -> str | None:
    """SQLSTATE of the first ErrorResponse in a byte stream, or None if there is none."""
    for kind, payload in parse_messages(data):
        if kind == b"E":
            return error_fields(payload).get("C")
    return None


def first_error(data: bytes) -> dict[str, str] | None:
    for kind, payload in parse_messages(data):
        if kind == b"E":
            return error_fields(payload)
    return None


# ---- a connection -----------------------------------------------------------------------


class RawConn:
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.params: dict[str, str] = {}
        self.backend_key: tuple[int, int] | None = None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError(f"connection closed while waiting for {n} bytes (have {len(self.buf)})")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self) -> tuple[bytes, bytes]:
        kind = self.recv_exact(1)
        (length,) = struct.unpack("!i", self.recv_exact(4))
        if length < 4:
            raise ProtocolError(f"bad length {length} for message {kind!r}")
        return kind, self.recv_exact(length - 4)

    def read_until_eof(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """Reads everything until the peer closes. Returns (bytes, closed); closed is False when
        the timeout passed with the connection still open."""
        data, self.buf = self.buf, b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data, False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return data, False
            except (ConnectionResetError, BrokenPipeError):
                return data, True
            if not chunk:
                return data, True
            data += chunk

    def read_until_ready(self) -> list[tuple[bytes, bytes]]:
        """Reads messages up to and including ReadyForQuery."""
        out = []
        while True:
            kind, payload = self.read_message()
            out.append((kind, payload))
            if kind == b"Z":
                return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- login --

    def login(self, user: str, password: str | None = None, database: str = "sydb") -> None:
        """Startup + authentication up to the first ReadyForQuery."""
        self.send(startup_packet(user, database))
        while True:
            kind, payload = self.read_message()
            if kind == b"E":
                raise ServerError(error_fields(payload))
            if kind != b"R":
                raise ProtocolError(f"expected Authentication, got {kind!r}")
            (code,) = struct.unpack("!i", payload[:4])
            if code == 0:
                break
            if password is None:
                raise ProtocolError(f"server wants a password (auth code {code}) and none was given")
            if code == 3:  # cleartext
                self.send(message(b"p", password.encode() + b"\0"))
            elif code == 5:  # md5
                salt = payload[4:8]
                inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
                self.send(message(b"p", b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"))
            elif code == 10:  # SASL
                mechanisms = payload[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise ProtocolError(f"no SCRAM-SHA-256 in {mechanisms!r}")
                self._scram(password)
            else:
                raise ProtocolError(f"unsupported auth request {code}")
        for kind, payload in self.read_until_ready():
            if kind == b"E":
                raise ServerError(error_fields(payload))
            if kind == b"S":
                k, v, _ = payload.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            if kind == b"K":
                self.backend_key = struct.unpack("!ii", payload[:8])

    def _scram(self, password: str) -> None:
        nonce = base64.b64encode(os.urandom(18)).decode()
        client_first_bare = f"n=,r={nonce}"
        first = ("n,," + client_first_bare).encode()
        self.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        kind, payload = self.read_message()
        if kind == b"E":
            raise ServerError(error_fields(payload))
        (code,) = struct.unpack("!i", payload[:4])
        if code != 11:
            raise ProtocolError(f"expected SASLContinue, got auth code {code}")
        server_first = payload[4:].decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(nonce):
            raise ProtocolError("server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{client_first_bare},{server_first},{final_without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = f"{final_without_proof},p={base64.b64encode(proof).decode()}".encode()
        self.send(message(b"p", final))
        kind, payload = self.read_message()
        if kind == b"E":
            raise ServerError(error_fields(payload))
        (code,) = struct.unpack("!i", payload[:4])
        if code != 12:
            raise ProtocolError(f"expected SASLFinal, got auth code {code}")
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        expected = hmac.new(server_key, auth_message, "sha256").digest()
        got = dict(kv.split("=", 1) for kv in payload[4:].decode().split(","))
        if base64.b64decode(got["v"]) != expected:
            raise ProtocolError("bad SCRAM server signature")

    # -- simple query --

    def simple_query(self, sql: str) -> list[tuple[bytes, bytes]]:
        self.send(query(sql))
        return self.read_until_ready()


def data_rows(msgs: list[tuple[bytes, bytes]]) -> list[list[str | None]]:
    rows = []
    for kind, payload in msgs:
        if kind != b"D":
            continue
        (n,) = struct.unpack("!h", payload[:2])
        i = 2
        row = []
        for _ in range(n):
            (ln,) = struct.unpack("!i", payload[i : i + 4])
            i += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(payload[i : i + ln].decode())
                i += ln
        rows.append(row)
    return rows
