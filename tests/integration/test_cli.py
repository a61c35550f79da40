"""The herd command: nodes, up, refusing bad configuration, help."""

import os
import re
import signal
import subprocess

import pytest

from herdlib import HERD_BIN, ROOT, SLOW, Herd, iamat, wait_for, whatsat


def run(*args, cwd=None):
    return subprocess.run([HERD_BIN, *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd)


def test_nodes_lists_the_default_herd():
    r = run("nodes", "-c", os.path.join(ROOT, "herd.cfg"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Hill 127.0.0.1:12000", "Jaquez 127.0.0.1:12001", "Smith 127.0.0.1:12002",
        "Singleton 127.0.0.1:12003", "Campbell 127.0.0.1:12004"]


def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "herd node NAME" in r.stdout and "herd up" in r.stdout
    assert run("frobnicate").returncode == 2
    assert run("node").returncode == 2
    r = run("node", "Hill", "--role", "chef", "-c", os.path.join(ROOT, "herd.cfg"))
    assert r.returncode == 2 and "--role" in r.stderr


@pytest.mark.parametrize("text,expect", [
    ("node = A\n   client = 127.0.0.1:1\n", "bad.cfg:2"),
    ("node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n    log = a.log\n"
     "edges\n    edge = A Nobody\n", "Nobody"),
    ("node = A\n    bus = tcp://127.0.0.1:2\n    log = a.log\n", "client"),
    ("node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n    log = a.log\n"
     "node = B\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:3\n    log = b.log\n",
     "127.0.0.1:1"),
    ("node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n    log = a.log\n"
     "    colour = blue\n", "colour"),
])
def test_bad_config_is_refused_with_file_and_reason(tmp_path, text, expect):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    for args in (["nodes"], ["node", "A"], ["up"]):
        r = run(*args, "-c", str(path))
        assert r.returncode == 1
        assert "bad.cfg" in r.stderr and expect in r.stderr, r.stderr


def test_missing_config_is_refused(tmp_path):
    r = run("nodes", "-c", str(tmp_path / "nope.cfg"))
    assert r.returncode == 1 and "nope.cfg" in r.stderr


@pytest.mark.parametrize("split", [False, True])
def test_up_runs_every_node_and_stops_on_sigterm(tmp_path, split):
    herd = Herd(str(tmp_path))
    argv = [HERD_BIN, "up", "-c", herd.config] + (["--split"] if split else [])
    proc = subprocess.Popen(argv, env=herd.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for n in herd.names:
            herd.procs[n] = []
            wait_for(lambda: _accepts(herd.port(n)), 10, what=f"{n} up")
        herd.wait_links()
        at = iamat(herd.port("Hill"), "upclient", "+1+1", 42)
        wait_for(lambda: whatsat(herd.port("Campbell"), "upclient", 1, 1)[0] == at, 10,
                 what="propagation under herd up")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20 * SLOW)
    assert proc.returncode == 0, err
    for n in herd.names:
        assert f"starting {n}" in out
        assert f"127.0.0.1:{herd.port(n)}" in out
        assert b"stopping on" in herd.log(n)
    #  Every process is gone: the client ports are free again
    for n in herd.names:
        assert not _accepts(herd.port(n))


def _accepts(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_make_install_lays_out_program_unit_and_config(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert os.access(dest / "usr/bin/herd", os.X_OK)
    unit = (dest / "usr/lib/systemd/system/herd@.service").read_text()
    assert "ExecStart=/usr/bin/herd node %i -c /etc/herd/herd.cfg" in unit
    assert "Restart=on-failure" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert not re.search(r"@[A-Z]+@", unit), "a placeholder left in the unit"
    #  The example config, its relative log paths moved to /var/log/herd
    assert (dest / "etc/herd/herd.cfg").read_text() == re.sub(
        r"(?m)^(    log = )logs/", r"\1/var/log/herd/", open(os.path.join(ROOT, "herd.cfg")).read())
    assert "postrotate" in (dest / "etc/logrotate.d/herd").read_text()
    #  The installed program works
    r = subprocess.run([str(dest / "usr/bin/herd"), "nodes", "-c", str(dest / "etc/herd/herd.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("Hill 127.0.0.1:12000")


#  Each subcommand with the arguments it needs (parsing fails before the
#  config is read, so a missing file keeps a broken parser from running it)
COMMANDS = {
    "node": ["Hill"], "up": [], "nodes": [], "digest": [], "get": ["kiwi", "Hill"],
    "link": ["Hill", "Smith", "up"], "monitor": [], "graph": [], "keygen": ["Hill"],
    "check": ["Hill"],
    "version": [], "help": ["node"],
}
NO_CONFIG = "/nonexistent/herd.cfg"


def test_version():
    for args in (["--version"], ["version"], ["-V"]):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        first, second = r.stdout.splitlines()
        assert re.fullmatch(r"herd \S+", first), r.stdout
        assert re.fullmatch(r"libzmq \d+\.\d+\.\d+, czmq \d+\.\d+\.\d+", second), r.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS) + ["client"])
def test_every_command_has_its_own_help(command):
    r = run(command, "--help")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"usage: herd {command}"), r.stdout
    #  Its own page, not the global one
    others = [c for c in COMMANDS if c != command]
    assert not any(f"herd {c} " in r.stdout for c in others), r.stdout
    assert run("help", command).stdout == r.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_extra_argument_is_an_error(command, tmp_path):
    r = run(command, *COMMANDS[command], "extra", "-c", NO_CONFIG, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert f"herd {command}: unexpected argument 'extra'" in r.stderr, r.stderr
    assert f"(see herd {command} --help)" in r.stderr and r.stdout == "", r.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS) + ["client"])
def test_unknown_option_is_an_error(command, tmp_path):
    args = COMMANDS.get(command, ["Hill"])
    r = run(command, *args, "--bogus", "-c", NO_CONFIG, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert f"herd {command}: unknown option '--bogus'" in r.stderr, r.stderr
    assert f"(see herd {command} --help)" in r.stderr and r.stdout == "", r.stderr


def test_digest_json_is_refused_and_options_are_where_they_were():
    r = run("digest", "--json", "-c", NO_CONFIG)
    assert r.returncode == 2 and "'--json'" in r.stderr, r.stderr
    #  A missing value and a missing argument say what was meant
    r = run("node", "Hill", "--role")
    assert r.returncode == 2 and "--role" in r.stderr and "usage: herd node" in r.stderr
    r = run("get")
    assert r.returncode == 2 and "usage: herd get CLIENT" in r.stderr, r.stderr
    r = run("link", "Hill", "Smith", "sideways", "-c", NO_CONFIG)
    assert r.returncode == 2 and "sideways" in r.stderr, r.stderr
    #  -c before the command, --config=FILE, and after positionals all work
    cfg = os.path.join(ROOT, "herd.cfg")
    for args in (["-c", cfg, "nodes"], ["nodes", f"--config={cfg}"], ["--config", cfg, "nodes"]):
        r = run(*args)
        assert r.returncode == 0 and r.stdout.startswith("Hill 127.0.0.1:12000"), (args, r)
    assert run("frobnicate").returncode == 2 and "see herd --help" in run("frobnicate").stderr
