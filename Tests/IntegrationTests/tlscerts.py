"""Throwaway certificates for the TLS tests, made with the openssl command line: a test CA, a server
certificate for localhost / 127.0.0.1, client certificates (CN = user name), an expired one, and a second
CA that nothing trusts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")


@dataclasses.dataclass
class Certs:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def make_ca(self, name: str, cn: str) -> None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "30", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=self.dir)

    def make_cert(self, name: str, cn: str, ca: str = "ca", serial: int = 1, days: int = 30,
                  san: str | None = None) -> None:
        """`name`.crt/.key signed by `ca`; days=-1 makes one that expired yesterday."""
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE"]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-set_serial", str(serial), "-days", str(days), "-extfile", ext.name, "-out", f"{name}.crt",
                cwd=self.dir)
        os.chmod(self.dir / f"{name}.key", 0o600)


def generate(directory: Path) -> Certs:
    """The full set in `directory` (created): ca, other_ca, server (serial 4097, localhost and 127.0.0.1),
    server2 (serial 8194, for RELOAD), pgserver (for a Postgres with ssl = on: localhost only, not 127.0.0.1),
    client_<user> for the test roles and sy_certuser, client_expired, client_other_ca."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    c = Certs(directory)
    c.make_ca("ca", "Switchyard Test CA")
    c.make_ca("other_ca", "Untrusted Test CA")
    san = "DNS:localhost,IP:127.0.0.1"
    c.make_cert("server", "localhost", serial=4097, san=san)
    c.make_cert("server2", "localhost", serial=8194, san=san)
    c.make_cert("pgserver", "localhost", serial=300, san="DNS:localhost")
    for user in ("sy_scram", "sy_md5", "sy_trust", "sy_admin", "sy_certuser"):
        c.make_cert(f"client_{user}", user, serial=100)
    c.make_cert("client_expired", "sy_scram", serial=101, days=-1)
    c.make_cert("client_other_ca", "sy_scram", ca="other_ca", serial=102)
    return c
