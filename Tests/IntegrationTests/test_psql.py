"""psql through the proxy: -c, multi-statement strings, empty queries, \\copy both ways,
large objects (libpq's lo_* use the FunctionCall fast path)."""

import os
import subprocess

from conftest import pg_env
from pgwire import RawConn


def psql(pg_bin, proxy, *args, user="sy_scram", input=None, timeout=30):
    r = subprocess.run(
        [os.path.join(pg_bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args],
        env=pg_env(proxy, user), capture_output=True, text=True, input=input, timeout=timeout,
    )
    assert r.returncode == 0, f"psql {args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_select_1(pg_bin, proxy):
    assert psql(pg_bin, proxy, "-c", "select 1").strip() == "1"


def test_conninfo_string(pg_bin, proxy):
    conn = f"host=127.0.0.1 port={proxy.port} user=sy_scram dbname=sydb"
    assert psql(pg_bin, proxy, conn, "-c", "select current_user").strip() == "sy_scram"


def test_multi_statement_string(pg_bin, proxy):
    out = psql(pg_bin, proxy, "-c", "create temp table m(a int); insert into m values (1),(2); select sum(a) from m; select 'x' || 'y'")
    assert out.split("\n")[:4] == ["CREATE TABLE", "INSERT 0 2", "3", "xy"], out


def test_empty_query(pg_bin, proxy):
    assert psql(pg_bin, proxy, "-c", ";").strip() == ""
    # And on the wire: Query "" -> EmptyQueryResponse ('I'), ReadyForQuery.
    with RawConn(proxy.host, proxy.port) as c:
        c.login("sy_scram", "scram-pass")
        kinds = [k for k, _ in c.simple_query("")]
        assert kinds == [b"I", b"Z"], kinds


def test_copy_both_directions(pg_bin, proxy, tmp_path):
    src = tmp_path / "in.tsv"
    dst = tmp_path / "out.tsv"
    src.write_text("".join(f"{i}\tline {i} with \\t tab and unicode é\n" for i in range(20000)))
    script = f"""
drop table if exists psql_copy;
create table psql_copy(id int primary key, t text);
\\copy psql_copy from '{src}'
\\copy (select * from psql_copy order by id) to '{dst}'
select count(*) from psql_copy;
"""
    out = psql(pg_bin, proxy, input=script)
    assert out.strip().splitlines()[-1] == "20000", out
    assert dst.read_bytes() == src.read_bytes()


def test_large_object_fastpath(pg_bin, proxy, tmp_path):
    src = tmp_path / "blob.bin"
    dst = tmp_path / "blob.out"
    src.write_bytes(os.urandom(300_000))
    out = psql(pg_bin, proxy, "-c", f"\\lo_import '{src}'")
    oid = out.split()[-1]
    assert oid.isdigit(), out
    psql(pg_bin, proxy, "-c", f"\\lo_export {oid} '{dst}'")
    psql(pg_bin, proxy, "-c", f"\\lo_unlink {oid}")
    assert dst.read_bytes() == src.read_bytes()
