"""pgbench through the proxy: initialisation (COPY), then simple, extended and prepared modes."""

import os
import re
import subprocess

from conftest import pg_env


def pgbench(pg_bin, proxy, *args, timeout=120):
    r = subprocess.run(
        [os.path.join(pg_bin, "pgbench"), *args], env=pg_env(proxy), capture_output=True, text=True, timeout=timeout
    )
    return r


def test_pgbench_all_protocol_modes(pg_bin, proxy):
    r = pgbench(pg_bin, proxy, "-i", "-s", "1", "-q")
    assert r.returncode == 0, f"pgbench -i failed:\n{r.stdout}\n{r.stderr}"
    for mode in ("simple", "extended", "prepared"):
        r = pgbench(pg_bin, proxy, "-M", mode, "-c", "4", "-j", "2", "-T", "3", "-n")
        out = r.stdout + r.stderr
        assert r.returncode == 0, f"pgbench -M {mode} exited {r.returncode}:\n{out}"
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 0, out
        m = re.search(r"number of failed transactions: (\d+)", out)
        assert m and int(m.group(1)) == 0, out
        assert "aborted" not in out.lower() or "aborted in command" not in out, out
