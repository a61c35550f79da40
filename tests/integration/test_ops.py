"""Operations: one copy of a node per data directory, the packages and the
build's first contact, and the installed unit and logrotate rule."""

import fnmatch
import os
import re
import shutil
import subprocess

import pytest

from herdlib import HERD_BIN, ROOT, Client, SLOW, wait_for

ROLES = ["places", "bus", "gateway"]       # the order Herd.start starts them in


def _second_copy(herd, name, role=None):
    """Run another copy of the node (or a role); its pid, exit code, stderr."""
    argv = [HERD_BIN, "node", name, "-c", herd.config] + (["--role", role] if role else [])
    p = subprocess.Popen(argv, env=herd.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    _, err = p.communicate(timeout=30 * SLOW)
    return p.pid, p.returncode, err


def _snapshot(path):
    with open(path, "rb") as f:
        return f.read(), os.stat(path).st_mtime_ns


def test_second_copy_of_a_node_is_refused(make_herd, mode):
    """A second copy of a running node (or of any of its roles) exits 1
    naming the process that holds the data directory, before it reads the
    journal or writes a line to the log; once the first stops, it starts."""
    herd = make_herd(names=["Hill"], edges=[]).start()
    c = Client(herd.port("Hill"))
    assert c.request("IAMAT lock1 +1+1 1").endswith(b" lock1 +1+1 1")
    c.close()
    data = os.path.join(herd.tmp, "data", "Hill")
    #  The AT went out once the gateway's journal had the update; the bus's
    #  follows within a turn of its own
    wait_for(lambda: b" lock1 " in _snapshot(os.path.join(data, "journal"))[0], 5,
             what="the bus's journal to hold the update")
    journals = [os.path.join(data, "journal"), os.path.join(data, "gateway", "journal")]
    before = [_snapshot(path) for path in journals]
    holder = {role: p.pid for role, p in zip(ROLES if herd.split else [None], herd.procs["Hill"])}
    #  The whole node (refused at the first lock it takes: places) and each
    #  role alone, refused by the process that runs that role
    if herd.split:
        tries = [(None, "places")] + [(role, role) for role in ROLES]
    else:
        tries = [(None, None)] + [(role, None) for role in ROLES]
    pids = []
    for role, held_by in tries:
        pid, code, err = _second_copy(herd, "Hill", role)
        pids.append(pid)
        assert code == 1, (role, code, err)
        assert err.strip() == (f"herd: Hill: data directory {data} is in use by "
                               f"process {holder[held_by]}"), (role, err)
    #  The live node may still log its own lines (a client closed); none of
    #  the copies' (each starts with "starting ROLE (pid N)")
    assert [_snapshot(path) for path in journals] == before, "a refused copy touched a journal"
    with open(os.path.join(data, "lock")) as f:
        assert int(f.read()) == holder["bus" if herd.split else None]
    #  The log holds the first copy's lines alone (its roles flush them in
    #  their own time): one "starting ROLE (pid N)" a process, one load of
    #  each journal
    herd.stop("Hill")
    log = herd.log("Hill").decode()
    started = re.findall(r" main starting \S+ \(pid (\d+)\)", log)
    assert sorted(map(int, started)) == sorted(holder.values()), log
    assert log.count(" bus journal loaded") == 1, log
    assert log.count(" gateway journal loaded") == 1, log
    assert not any(f"pid {pid})" in log for pid in pids), log
    #  The lock goes with the process: the node starts again
    herd.start("Hill")
    c = Client(herd.port("Hill"))
    assert c.request("WHATSAT lock1 10 1").startswith(b"AT Hill ")
    c.close()


def _list(which):
    r = subprocess.run([os.path.join(ROOT, "scripts", "install-deps.sh"), "--list", which],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_install_deps_run_set_has_nc_and_no_test_tools():
    run, test = _list("run"), _list("test")
    #  The README's examples use nc -q, an option of netcat-openbsd only
    assert "netcat-openbsd" in run and "libmicrohttpd-dev" in run
    for tool in ("clang", "valgrind", "linux-perf", "python3-pytest", "python3-zmq", "iproute2"):
        assert tool not in run and tool in test, tool
    assert set(run) <= set(test)
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in ("libzmq", "czmq", "libcurl", "cJSON", "libmicrohttpd", "libsodium", "libedit",
                 "netcat-openbsd"):
        assert name in readme, name


def test_make_without_libraries_says_make_deps(tmp_path):
    """pkg-config finds none of the libraries: make stops before the first
    compile and says what to do."""
    build = tmp_path / "b"
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path / "none"), PKG_CONFIG_PATH="")
    r = subprocess.run(["make", "-s", "-j1", f"BUILD={build}", f"{build}/bin/herd"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert ("herd: missing libraries (libczmq libzmq libcurl libcjson libmicrohttpd libsodium): "
            "run 'make deps' (as root) first") in r.stderr, r.stderr[-2000:]
    assert "undefined reference" not in r.stderr
    assert not build.exists() or not any(f for _, _, f in os.walk(build))


def test_failed_recipe_leaves_no_target(tmp_path):
    """A compiler or linker that dies after writing its output leaves no
    file the next make would take as up to date (.DELETE_ON_ERROR)."""
    cc = tmp_path / "dying-cc"
    cc.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && echo half > "$2"; shift; done\n'
                  "exit 1\n")
    cc.chmod(0o755)
    build = tmp_path / "b"
    r = subprocess.run(["make", "-s", "-j1", f"BUILD={build}", f"CC={cc}", f"{build}/bin/herd"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    left = [os.path.join(d, x) for d, _, files in os.walk(build) for x in files]
    assert left == [], f"a failed recipe left {left}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """make install into a scratch prefix: the unit's ExecStart names a program
    that exists, so systemd-analyze verify can check it."""
    root = tmp_path_factory.mktemp("install")
    r = subprocess.run(["make", "-s", "install", f"PREFIX={root}/usr", f"SYSCONFDIR={root}/etc"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return root


def _analyze(*args):
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def test_installed_unit_verifies(installed):
    unit = installed / "usr/lib/systemd/system/herd@.service"
    text = unit.read_text()
    assert f"ExecStart={installed}/usr/bin/herd node %i -c {installed}/etc/herd/herd.cfg" in text
    r = _analyze("verify", str(unit))
    assert r.returncode == 0, r.stderr
    assert [l for l in r.stderr.splitlines() if "herd" in l] == [], r.stderr


def test_installed_unit_security_score_under_3(installed, tmp_path):
    unit = tmp_path / "herd@Hill.service"
    shutil.copy(installed / "usr/lib/systemd/system/herd@.service", unit)
    r = _analyze("security", "--offline=true", "--no-pager", str(unit))
    if r.returncode != 0 and "offline" in r.stderr:
        pytest.skip(f"systemd-analyze security has no offline mode: {r.stderr.strip()}")
    found = re.search(r"Overall exposure level for herd@Hill\.service: (\d+\.\d+)", r.stdout)
    assert found, r.stdout[-2000:] + r.stderr
    assert float(found.group(1)) < 3.0, "\n".join(
        l for l in r.stdout.splitlines() if l.startswith("✗"))


def test_logrotate_rule_covers_installed_config_logs(installed, tmp_path):
    cfg = (installed / "etc/herd/herd.cfg").read_text()
    logs = re.findall(r"^    log = (\S+)", cfg, re.M)
    assert len(logs) == 5
    rule = (installed / "etc/logrotate.d/herd").read_text()
    body = re.sub(r"#.*", "", rule)
    patterns = re.findall(r"^(/\S+)\s*\{", body, re.M)
    for log in logs:
        #  Where the node writes it: the unit runs in /var/lib/herd
        path = os.path.normpath(os.path.join("/var/lib/herd", log))
        assert path.startswith("/var/log/herd/"), path
        assert any(fnmatch.fnmatch(path, p) for p in patterns), (path, patterns)
    #  One SIGHUP for all the nodes, after all are rotated
    assert re.search(r"^\s*sharedscripts\s*$", body, re.M)
    unit = (installed / "usr/lib/systemd/system/herd@.service").read_text()
    assert "LogsDirectory=herd" in unit and "StateDirectory=herd" in unit
    if shutil.which("logrotate"):
        state = tmp_path / "state"
        r = subprocess.run(["logrotate", "--debug", "--state", str(state),
                            str(installed / "etc/logrotate.d/herd")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "error" not in r.stderr.lower(), r.stderr
