"""The command line: --check on good and bad configs, --version, --help."""

import subprocess

import pytest

from conftest import PASSWORDS, free_port, render_config, switchyard_bin, write_userlist

pytestmark = pytest.mark.proxy_only


def run(binary, *args, timeout=20):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def good_config(tmp_path, cluster):
    userlist = tmp_path / "userlist.txt"
    write_userlist(userlist, PASSWORDS)
    conf = tmp_path / "proxy.conf"
    conf.write_text(render_config(free_port(), userlist, cluster.primary_port, "scram-sha-256", cluster.replica_port, {}))
    return conf


def test_check_good_config(tmp_path, cluster):
    bin_path = switchyard_bin()
    conf = good_config(tmp_path, cluster)
    r = run(bin_path, "--config", str(conf), "--check")
    assert r.returncode == 0, f"--check rejected a good config:\n{r.stdout}\n{r.stderr}"


def test_check_unknown_key_names_file_line_and_key(tmp_path, cluster):
    bin_path = switchyard_bin()
    conf = good_config(tmp_path, cluster)
    lines = conf.read_text().splitlines()
    lines.insert(3, "bogus_key_xyz = 1")  # becomes line 4
    conf.write_text("\n".join(lines) + "\n")
    r = run(bin_path, "--config", str(conf), "--check")
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"--check accepted an unknown key:\n{out}"
    assert f"{conf}:4:" in out, out
    assert "bogus_key_xyz" in out, out


@pytest.mark.parametrize(
    "key,value",
    [
        ("listen_port", "not-a-number"),
        ("pool_mode", "sometimes"),
        ("auth_type", "kerberos"),
        ("server_connect_timeout", "5 fortnights"),
        ("max_packet_size", "-1"),
    ],
)
def test_check_bad_value_names_file_line_and_key(tmp_path, cluster, key, value):
    bin_path = switchyard_bin()
    conf = good_config(tmp_path, cluster)
    lines = conf.read_text().splitlines()
    idx = next(i for i, l in enumerate(lines) if l.split("=")[0].strip() == key)
    lines[idx] = f"{key} = {value}"
    conf.write_text("\n".join(lines) + "\n")
    r = run(bin_path, "--config", str(conf), "--check")
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"--check accepted {key} = {value}:\n{out}"
    assert f"{conf}:{idx + 1}:" in out, out
    assert key in out, out


def test_check_missing_file(tmp_path):
    bin_path = switchyard_bin()
    r = run(bin_path, "--config", str(tmp_path / "nope.conf"), "--check")
    assert r.returncode != 0
    assert "nope.conf" in r.stdout + r.stderr


def test_version():
    bin_path = switchyard_bin()
    r = run(bin_path, "--version")
    assert r.returncode == 0, r.stderr
    assert any(ch.isdigit() for ch in r.stdout + r.stderr), r.stdout


def test_help():
    bin_path = switchyard_bin()
    r = run(bin_path, "--help")
    assert r.returncode == 0, r.stderr
    assert "--config" in r.stdout + r.stderr
