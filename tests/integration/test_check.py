"""The protected bus, `herd check` (nginx -t) and `herd keygen --all`."""

import os
import re
import shutil
import socket
import stat
import subprocess
import time

from herdlib import HERD_BIN, SLOW, Herd, iamat, wait_for

OPEN_BUS = "security/curve = off to accept an open bus"


def run(*args, cwd=None):
    return subprocess.run([HERD_BIN, *args], capture_output=True, text=True,
                          timeout=30 * SLOW, cwd=cwd)


def herd_config(tmp, names=("Hill", "Smith"), curve=False):
    """A herd's config on free loopback ports (not started)."""
    return Herd(str(tmp), names=list(names), edges=[tuple(names[:2])] if len(names) > 1 else [],
                curve=curve)


def edit(herd, old, new):
    """Replace text in the herd's config file."""
    with open(herd.config) as f:
        text = f.read()
    assert old in text, (old, text)
    with open(herd.config, "w") as f:
        f.write(text.replace(old, new))


def line_of(herd, text):
    """1-based line of text in the herd's config."""
    with open(herd.config) as f:
        return next(i for i, l in enumerate(f, 1) if text in l)


def test_protected_bus_is_refused_with_file_key_and_reason(tmp_path):
    herd = herd_config(tmp_path)
    bus = f"bus = tcp://127.0.0.1:{herd.bus_port['Smith']}"
    edit(herd, bus, bus.replace("127.0.0.1", "0.0.0.0"))
    reason = (f"{herd.config}:{line_of(herd, 'tcp://0.0.0.0')}: node 'Smith': key 'bus': "
              f"binds 0.0.0.0 without CURVE: set security/curve = on, or {OPEN_BUS}")
    #  Every node of the file is checked: Hill is refused for Smith's bus too
    try:
        node = subprocess.run([HERD_BIN, "node", "Hill", "-c", herd.config],
                              capture_output=True, text=True, timeout=10 * SLOW, env=herd.env)
    except subprocess.TimeoutExpired:
        raise AssertionError("Hill ran with Smith's bus open on 0.0.0.0") from None
    assert node.returncode == 1 and f"herd: bad configuration: {reason}" in node.stderr, node
    check = run("check", "-c", herd.config)
    assert check.returncode == 1, check
    assert f"herd: check: {reason}\n" in check.stderr, check.stderr
    assert f"herd: {herd.config}: configuration has 1 problem" in check.stderr


def test_open_bus_said_explicitly_runs_and_check_warns(tmp_path):
    herd = herd_config(tmp_path, names=("Hill",))
    sync = f"sync = tcp://127.0.0.1:{herd.sync_port['Hill']}"
    edit(herd, sync, sync.replace("127.0.0.1", "0.0.0.0"))
    with open(herd.config, "a") as f:
        f.write("security\n    curve = off\n")
    check = run("check", "-c", herd.config)
    assert check.returncode == 0, check
    assert (f"herd: check: {herd.config}: node 'Hill': warning: key 'sync': binds 0.0.0.0 with "
            "security/curve = off") in check.stderr, check.stderr
    assert f"configuration OK (1 node, 1 checked here)" in check.stdout, check.stdout
    assert "herd/name" not in check.stderr, check.stderr
    #  The same with the default herd name: a stranger herd that kept it too
    #  would join, so check says to name it
    edit(herd, "    name = test\n", "")
    check = run("check", "-c", herd.config)
    assert check.returncode == 0, check
    assert (f"herd: check: {herd.config}: warning: herd/name is the default 'herd' and the bus "
            "leaves this host") in check.stderr, check.stderr
    edit(herd, "herd\n", "herd\n    name = test\n")
    herd.start()
    try:
        assert herd.converged() is not None     # its sync answers on 0.0.0.0
    finally:
        assert herd.stop() == {"Hill": [0]}


def test_check_good_config(tmp_path):
    herd = herd_config(tmp_path, names=("Hill", "Jaquez", "Smith"))
    r = run("check", "-c", herd.config)
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout == f"herd: {herd.config}: configuration OK (3 nodes, 3 checked here)\n"
    #  It made the directories the nodes would, and left no probe behind
    assert os.listdir(os.path.join(herd.tmp, "data", "Hill")) == []
    assert os.path.isdir(os.path.join(herd.tmp, "logs"))
    r = run("check", "Jaquez", "-c", herd.config)
    assert r.returncode == 0 and "(3 nodes, 1 checked here)" in r.stdout, r
    r = run("check", "Nobody", "-c", herd.config)
    assert r.returncode == 1 and "no node 'Nobody'" in r.stderr, r


def test_check_bad_key_says_what_node_says(tmp_path):
    herd = herd_config(tmp_path)
    edit(herd, "node = Smith\n", "node = Smith\n    colour = blue\n")
    node = subprocess.run([HERD_BIN, "node", "Smith", "-c", herd.config], capture_output=True,
                          text=True, timeout=30 * SLOW, env=herd.env)
    said = node.stderr.strip().removeprefix("herd: bad configuration: ")
    assert node.returncode == 1 and "unknown key 'colour'" in said, node
    check = run("check", "-c", herd.config)
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        f"herd: check: {said}", f"herd: {herd.config}: configuration has 1 problem"], check.stderr


def test_check_unwritable_paths(tmp_path):
    herd = herd_config(tmp_path)
    #  As root, modes do not stop us: a path whose parent is a regular file does
    blocker = os.path.join(herd.tmp, "a-file")
    open(blocker, "w").close()
    edit(herd, f"log = {herd.tmp}/logs/Hill.log", f"log = {blocker}/logs/Hill.log")
    edit(herd, f"data = {herd.tmp}/data/Smith", f"data = {blocker}/Smith")
    r = run("check", "-c", herd.config)
    assert r.returncode == 1, r
    prefix = f"herd: check: {herd.config}: node"
    assert (f"{prefix} 'Hill': key 'log': cannot write in directory {blocker}/logs: "
            "Not a directory") in r.stderr, r.stderr
    assert (f"{prefix} 'Smith': key 'data': cannot write in directory {blocker}/Smith: "
            "Not a directory") in r.stderr, r.stderr
    assert r.stderr.endswith("configuration has 2 problems\n"), r.stderr
    #  herd nodes only reads the file: it passes
    assert run("nodes", "-c", herd.config).returncode == 0


def test_check_port_taken(tmp_path):
    herd = herd_config(tmp_path)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", herd.client_port["Smith"]))
    squatter.listen()
    try:
        r = run("check", "-c", herd.config)
    finally:
        squatter.close()
    assert r.returncode == 1, r
    assert (f"herd: check: {herd.config}: node 'Smith': key 'client': port "
            f"{herd.client_port['Smith']} on 127.0.0.1 is taken by process {os.getpid()} (") in r.stderr, r.stderr
    assert "configuration has 1 problem" in r.stderr
    assert run("check", "-c", herd.config).returncode == 0


def test_check_missing_certificates(tmp_path):
    herd = herd_config(tmp_path, curve=True)
    assert run("check", "-c", herd.config).returncode == 0
    #  A secret that is not on this host
    os.rename(f"{herd.certs}/Smith.cert_secret", f"{herd.certs}/elsewhere")
    r = run("check", "-c", herd.config)
    assert r.returncode == 1, r
    assert (f"herd: check: {herd.config}: node 'Smith': key 'cert': secret certificate "
            f"{herd.certs}/Smith.cert_secret: No such file or directory") in r.stderr, r.stderr
    #  Only the named node is checked: Hill's secret is here
    assert run("check", "Hill", "-c", herd.config).returncode == 0
    #  A public certificate missing (every host needs every node's): refused
    #  as the node refuses it, whichever node is checked
    os.remove(f"{herd.certs}/Smith.cert")
    r = run("check", "Hill", "-c", herd.config)
    assert r.returncode == 1, r
    assert (f"herd: check: {herd.config}: node 'Smith': key 'cert': cannot load a certificate "
            f"from '{herd.certs}/Smith.cert'") in r.stderr, r.stderr


def paste(herd, printed):
    """Put keygen --all's printed lines into the herd's config."""
    certs = dict(re.findall(r"^node = (\S+)\n    cert = (\S+)$", printed, re.M))
    assert sorted(certs) == sorted(herd.names), printed
    assert printed.endswith("security\n    curve = on\n"), printed
    for name, path in certs.items():
        edit(herd, f"node = {name}\n", f"node = {name}\n    cert = {path}\n")
    with open(herd.config, "a") as f:
        f.write("security\n    curve = on\n")


def test_keygen_all_makes_the_herds_certificates(tmp_path):
    herd = herd_config(tmp_path)
    #  Smith's bus off loopback: refused until CURVE is on
    bus = f"bus = tcp://127.0.0.1:{herd.bus_port['Smith']}"
    edit(herd, bus, bus.replace("127.0.0.1", "0.0.0.0"))
    assert run("check", "-c", herd.config).returncode == 1
    r = run("keygen", "--all", "-c", herd.config, cwd=herd.tmp)
    assert r.returncode == 0, r
    certs = os.path.join(herd.tmp, "certs")
    assert sorted(os.listdir(certs)) == ["Hill.cert", "Hill.cert_secret", "Smith.cert",
                                         "Smith.cert_secret"]
    for name in herd.names:
        assert stat.S_IMODE(os.stat(f"{certs}/{name}.cert_secret").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(f"{certs}/{name}.cert").st_mode) == 0o644
    #  A second run overwrites nothing, and says so
    before = {n: open(f"{certs}/{n}").read() for n in os.listdir(certs)}
    again = run("keygen", "--all", "-c", herd.config, cwd=herd.tmp)
    assert again.returncode == 0 and again.stdout.count("kept, not overwritten") == 2, again
    assert {n: open(f"{certs}/{n}").read() for n in os.listdir(certs)} == before
    #  The printed lines make a config every node accepts
    paste(herd, r.stdout.replace("cert = certs/", f"cert = {certs}/"))
    check = run("check", "-c", herd.config)
    assert check.returncode == 0 and check.stderr == "", check


def test_two_hosts_with_curve(tmp_path):
    """README's walkthrough on one machine: each "host" is a directory the
    relative cert paths resolve in, holding every public certificate and
    only its own node's secret."""
    herd = herd_config(tmp_path)
    bus = f"bus = tcp://127.0.0.1:{herd.bus_port['Smith']}"
    edit(herd, bus, bus.replace("127.0.0.1", "0.0.0.0"))
    host = {n: os.path.join(herd.tmp, f"host-{n}") for n in herd.names}
    for d in host.values():
        os.makedirs(os.path.join(d, "certs"))
    r = run("keygen", "--all", "-c", herd.config, cwd=host["Hill"])
    assert r.returncode == 0, r
    paste(herd, r.stdout)
    assert "cert = certs/Smith.cert" in open(herd.config).read()
    #  Smith's host: every public certificate, and Smith's secret, moved
    for f in ("Hill.cert", "Smith.cert"):
        shutil.copy(os.path.join(host["Hill"], "certs", f), os.path.join(host["Smith"], "certs"))
    os.rename(os.path.join(host["Hill"], "certs", "Smith.cert_secret"),
              os.path.join(host["Smith"], "certs", "Smith.cert_secret"))
    for n in herd.names:
        assert run("check", n, "-c", herd.config, cwd=host[n]).returncode == 0
    r = run("check", "Smith", "-c", herd.config, cwd=host["Hill"])
    assert r.returncode == 1 and "Smith.cert_secret: No such file" in r.stderr, r
    procs = {n: subprocess.Popen([HERD_BIN, "node", n, "-c", herd.config], cwd=host[n],
                                 env=herd.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for n in herd.names}
    herd.procs = {n: [p] for n, p in procs.items()}     # herd.stop() stops them
    try:
        for n in herd.names:
            herd.wait_ready(n)
        herd.wait_links()
        assert b"CURVE on: public key" in herd.log("Smith")
        at = iamat(herd.port("Hill"), "kiwi", "+1+1", f"{time.time():.9f}")
        assert at.startswith(b"AT Hill ")

        def digest_from_smiths_host():
            r = run("digest", "-c", herd.config, cwd=host["Smith"])
            return r.returncode == 0 and r.stdout.split()[1] == "1" and r.stdout

        wait_for(digest_from_smiths_host, 5, what="digests asked from Smith's host")
        #  Checked while it runs: the port and the data directory are taken
        r = run("check", "Hill", "-c", herd.config, cwd=host["Hill"])
        assert r.returncode == 1, r
        assert re.search(r"node 'Hill': key 'client': port \d+ on 127.0.0.1 is taken by "
                         r"process \d+ \(herd\): is the node running already\?", r.stderr), r.stderr
        assert "node 'Hill': key 'data': directory" in r.stderr and "in use by process" in r.stderr
    finally:
        assert herd.stop() == {"Hill": [0], "Smith": [0]}


def test_keygen_all_follows_the_configs_cert_paths(tmp_path):
    herd = herd_config(tmp_path)
    where = os.path.join(herd.tmp, "keys")
    edit(herd, "node = Hill\n", f"node = Hill\n    cert = {where}/hill-key\n")
    r = run("keygen", "--all", "-c", herd.config, cwd=herd.tmp)
    assert r.returncode == 0, r
    #  Hill's where its cert key points; Smith's beside it
    assert sorted(os.listdir(where)) == ["Smith.cert", "Smith.cert_secret", "hill-key",
                                         "hill-key_secret"]
    assert f"node = Hill\n    cert = {where}/hill-key\n" in r.stdout, r.stdout
    assert run("keygen", "--all", "Hill", "-c", herd.config).returncode == 2
    assert run("keygen", "-c", herd.config).returncode == 2
