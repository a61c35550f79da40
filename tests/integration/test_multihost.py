"""Multi-host deployment: one herd.cfg, five hosts, one node each.

The hosts are Linux network namespaces on this machine, each with its own
address from 198.18.0.0/15 (RFC 2544 benchmarking range, inside the
namespaces only) on a veth cable to a bridge in a "switch" namespace. Every
host gets the same herd.cfg and starts its node as an operator would:
`herd up -c herd.cfg` (which must start only the node whose client address
is on that host), `herd up --split`, or `herd node NAME`. Each node binds its
client, bus and sync addresses on its host's address and connects its bus
to its neighbours' real addresses; clients and `herd digest` run inside the
namespaces. Then a host's cable is unplugged at the switch and plugged in
again.
"""

import os
import re
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

import netns
from herdlib import HERD_BIN, SLOW, Client, DEFAULT_EDGES, DEFAULT_NAMES, wait_for

CLIENT_PORT, BUS_PORT, SYNC_PORT = 12000, 13000, 14000  # the same on every host
HOST = {name: i for i, name in enumerate(DEFAULT_NAMES, 1)}  # node -> host number
#  How each host starts its node: `herd node NAME` for one, `herd up --split`
#  for one, plain `herd up` for the rest
HOW = {"Hill": "node", "Jaquez": "up --split"}
CUT = "Singleton"       # the host whose cable is cut: its neighbours stay linked
PATTERN = re.compile(r"herd: starting (\S+)")


def neighbours(name):
    return sorted([b for a, b in DEFAULT_EDGES if a == name] +
                  [a for a, b in DEFAULT_EDGES if b == name])


class HostClient(Client):
    """herdlib's client, connected from inside a host's namespace."""

    def __init__(self, lab, host, node, timeout=10.0):
        self.sock = lab.connect(HOST[host], (lab.address(HOST[node]), CLIENT_PORT),
                                timeout * SLOW)
        self.buffer = b""


class Deployment:
    """The five-host herd: one config, one `herd` process tree per host."""

    def __init__(self, tmp, lab):
        self.tmp, self.lab = tmp, lab
        lines = ["herd", f"    run_dir = {tmp}/run"]
        for name in DEFAULT_NAMES:
            addr = lab.address(HOST[name])
            lines += [f"node = {name}", f"    client = {addr}:{CLIENT_PORT}",
                      f"    bus = tcp://{addr}:{BUS_PORT}",
                      f"    sync = tcp://{addr}:{SYNC_PORT}",
                      f"    log = {tmp}/logs/{name}.log",
                      f"    data = {tmp}/data/{name}"]
        lines += ["edges"] + [f"    edge = {a} {b}" for a, b in DEFAULT_EDGES]
        #  Bus and sync on the hosts' addresses without CURVE: said explicitly
        #  (the protected bus refuses it otherwise)
        lines += ["security", "    curve = off"]
        lines += ["places", "    timeout_ms = 2000"]
        self.config = os.path.join(tmp, "herd.cfg")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = dict(os.environ)
        self.env["GOOGLE_API_KEY"] = "test-key-123"
        #  Nothing listens on port 9 of a host's loopback: Places fails fast
        self.env["HERD_PLACES_URL"] = "http://127.0.0.1:9/nearbysearch/json"
        self.procs = {}

    def out_path(self, name, stream):
        return os.path.join(self.tmp, f"{name}.{stream}")

    def output(self, name, stream):
        try:
            with open(self.out_path(name, stream), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, "logs", f"{name}.log"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def herd_argv(self, name):
        how = HOW.get(name, "up")
        if how == "node":
            return [HERD_BIN, "node", name, "-c", self.config]
        return [HERD_BIN, *how.split(), "-c", self.config]

    def start(self):
        for name in DEFAULT_NAMES:
            with open(self.out_path(name, "out"), "wb") as out, \
                    open(self.out_path(name, "err"), "wb") as err:
                self.procs[name] = subprocess.Popen(
                    self.lab.exec_argv(HOST[name], self.herd_argv(name)),
                    env=self.env, stdout=out, stderr=err)

    def alive(self, name):
        p = self.procs[name]
        if p.poll() is not None:
            raise AssertionError(f"{name}'s host: herd exited with {p.returncode}: "
                                 f"{self.output(name, 'err')}")

    def accepts(self, name, origin):
        """True once NAME's gateway accepts a client from host ORIGIN."""
        self.alive(name)
        try:
            HostClient(self.lab, origin, name, timeout=1).close()
            return True
        except OSError:
            return False

    def run(self, origin, *args, timeout=20):
        """`herd ARGS -c herd.cfg` run on host ORIGIN."""
        return subprocess.run(self.lab.exec_argv(HOST[origin], [HERD_BIN, *args,
                                                                "-c", self.config]),
                              env=self.env, capture_output=True, text=True,
                              timeout=timeout * SLOW)

    def digests(self, origin):
        """(exit code, {node: 'COUNT DIGEST' or 'unreachable'}) of `herd digest` on ORIGIN."""
        r = self.run(origin, "digest")
        found = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        return r.returncode, found

    def stop(self):
        """SIGTERM every host's herd; {node: exit code}, plus stderr of each."""
        codes = {}
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in list(self.procs.items()):
            try:
                codes[name] = p.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                codes[name] = "hung"
            del self.procs[name]
        return codes

    def kill(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs = {}


@pytest.fixture
def lab():
    try:
        made = netns.Lab(len(DEFAULT_NAMES))
    except FileNotFoundError as e:
        if os.geteuid() != 0:
            pytest.skip(f"multi-host test needs network namespaces: not root ({e})")
        pytest.fail(str(e))
    try:
        made.create()
    except netns.Unavailable as e:
        made.destroy()
        pytest.skip(f"multi-host test needs network namespaces: {e}")
    except BaseException:
        made.destroy()
        raise
    yield made
    made.destroy()


@pytest.fixture
def deployment(tmp_path, lab):
    d = Deployment(str(tmp_path), lab)
    yield d
    d.kill()        # what the test did not stop (it failed): before the namespaces go


def iamat(lab, host, node, client, position, when):
    c = HostClient(lab, host, node)
    try:
        return c.request(f"IAMAT {client} {position} {when}")
    finally:
        c.close()


def iamat_many(lab, host, node, clients, position, when):
    """Pipelined IAMATs on one connection; returns {client: AT line}."""
    c = HostClient(lab, host, node, timeout=30)
    try:
        c.send("".join(f"IAMAT {name} {position} {when}\n" for name in clients))
        return {name: c.read_line() for name in clients}
    finally:
        c.close()


def whatsat(lab, host, node, client):
    c = HostClient(lab, host, node)
    try:
        c.send(f"WHATSAT {client} 1 1\n")
        return c.read_whatsat()[0]
    finally:
        c.close()


def logged_at(log, needle, after):
    """Wall-clock time of the first line of log holding needle, stamped after `after`."""
    for line in log.splitlines():
        if needle in line:
            stamp = datetime.strptime(line[:27].decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
            stamp = stamp.replace(tzinfo=timezone.utc).timestamp()
            if stamp >= after:
                return stamp
    return None


def answered(lab, node, client, at, bound=5):
    """Wait until NODE, asked by a client on its own host, answers CLIENT with AT."""
    wait_for(lambda: whatsat(lab, node, node, client) == at, bound,
             what=f"{node} to answer WHATSAT {client} with {at!r}")


def test_one_config_five_hosts(lab, deployment):
    d = deployment
    started = time.monotonic()

    #  A host that is none of the nodes' starts nothing from the same file
    r = subprocess.run([lab.ip, "netns", "exec", lab.switch, HERD_BIN, "up", "-c", d.config],
                       env=d.env, capture_output=True, text=True, timeout=10 * SLOW)
    assert r.returncode == 1 and "no node of" in r.stderr and "starting" not in r.stdout, \
        (r.returncode, r.stdout, r.stderr)

    #  Every host runs the same file; each starts only its own node
    d.start()
    for name in DEFAULT_NAMES:
        #  Asked from another host: its client address is reachable across hosts
        other = DEFAULT_NAMES[HOST[name] % len(DEFAULT_NAMES)]
        wait_for(lambda: d.accepts(name, other), 10, what=f"{name} to accept clients")
    for name in DEFAULT_NAMES:
        if HOW.get(name) != "node":
            assert PATTERN.findall(d.output(name, "out")) == [name], \
                (name, d.output(name, "out"))
    #  Every bus link is up, to the neighbour's real address
    for name in DEFAULT_NAMES:
        for peer in neighbours(name):
            endpoint = f"bus link up {peer} tcp://{lab.address(HOST[peer])}:{BUS_PORT}"
            wait_for(lambda: endpoint.encode() in d.log(name), 10,
                     what=f"{name}: {endpoint}")
    up = time.monotonic() - started

    #  Propagation: an IAMAT at each host reaches every other host
    ats = {}
    for i, name in enumerate(DEFAULT_NAMES):
        client = f"phone-of-{name.lower()}"
        ats[client] = iamat(lab, name, name, client, "+34.068930-118.445127",
                            f"1700000000.{i}")
        assert ats[client].startswith(f"AT {name} ".encode()), ats[client]
    for client, at in ats.items():
        for name in DEFAULT_NAMES:
            answered(lab, name, client, at)
    #  Convergence, seen from one host
    code, found = d.digests("Smith")
    assert code == 0 and len(set(found.values())) == 1, found
    assert found["Hill"].startswith(f"{len(ats)} "), found

    #  Cut Singleton's cable at the switch
    cut_at = time.time()
    lab.cable(HOST[CUT], "down")
    others = [n for n in DEFAULT_NAMES if n != CUT]
    #  The others keep propagating: Campbell reaches Jaquez through Smith and Hill
    during = [f"during-cut-{i}" for i in range(100)]
    during_ats = iamat_many(lab, "Campbell", "Campbell", during, "-33.8688+151.2093",
                            "1700000100")
    for name in others:
        answered(lab, name, "during-cut-42", during_ats["during-cut-42"])
    #  Singleton still serves the clients on its own host
    island_at = iamat(lab, CUT, CUT, "islander", "+1+1", "1700000200")
    assert island_at.startswith(f"AT {CUT} ".encode())
    #  Singleton's neighbours notice with ZMTP heartbeats (1 s, 3 s time-out;
    #  the log is written within a second), and so does Singleton
    down = {}
    for name in neighbours(CUT):
        down[name] = wait_for(lambda: logged_at(d.log(name), f"bus link down {CUT} ".encode(),
                                                cut_at), 8, interval=0.1,
                              what=f"{name} to log {CUT}'s link down")
    for peer in neighbours(CUT):
        wait_for(lambda: logged_at(d.log(CUT), f"bus link down {peer} ".encode(), cut_at), 8,
                 interval=0.1, what=f"{CUT} to log {peer}'s link down")
    noticed = max(down.values()) - cut_at
    code, found = d.digests("Hill")
    assert code != 0 and found[CUT] == "unreachable", found
    assert len({found[n] for n in others}) == 1, found
    assert found["Hill"].startswith(f"{len(ats) + len(during)} "), found
    assert whatsat(lab, "Hill", "Hill", "islander").startswith(b"? "), "crossed the cut"

    #  Plug it in again: links come back, both sides catch up
    healed_at = time.time()
    lab.cable(HOST[CUT], "up")

    def converged():
        code, found = d.digests("Jaquez")
        return code == 0 and len(set(found.values())) == 1 and found
    found = wait_for(converged, 15, interval=0.1, what="the herd to converge after healing")
    converged_after = time.time() - healed_at
    assert found[CUT].startswith(f"{len(ats) + len(during) + 1} "), found
    assert whatsat(lab, CUT, CUT, "during-cut-42") == during_ats["during-cut-42"]
    assert whatsat(lab, CUT, CUT, "during-cut-99") == during_ats["during-cut-99"]
    for name in others:
        assert whatsat(lab, name, name, "islander") == island_at, name
    wait_for(lambda: logged_at(d.log(CUT), b"caught up with", healed_at), 5,
             what=f"{CUT} to log its catch-up")
    #  Every link comes back. A neighbour's reconnect started during the cut
    #  may sit in the kernel's SYN back-off (the bus sets no connect time-out),
    #  so this can take several seconds more than the convergence above
    relinked = {}
    for name in neighbours(CUT):
        relinked[name] = wait_for(
            lambda: logged_at(d.log(name), f"bus link up {CUT} ".encode(), healed_at), 20,
            interval=0.1, what=f"{name} to log {CUT}'s link up again")
    for peer in neighbours(CUT):
        wait_for(lambda: logged_at(d.log(CUT), f"bus link up {peer} ".encode(), healed_at), 20,
                 interval=0.1, what=f"{CUT} to log {peer}'s link up again")

    #  Every host's herd stops cleanly (under the sanitizers: leak-free)
    codes = d.stop()
    assert all(c == 0 for c in codes.values()), codes
    for name in DEFAULT_NAMES:
        err = d.output(name, "err")
        assert "Sanitizer" not in err and " exited (" not in err, (name, err)
        if HOW.get(name) != "node":
            assert "herd: stopping" in d.output(name, "out"), name
        assert b"stopping on" in d.log(name), name
    print(f"\nfive hosts up and linked in {up:.1f} s; cut logged by every neighbour "
          f"{noticed:.1f} s after it; after plugging in: converged in "
          f"{converged_after:.1f} s, every link up in {max(relinked.values()) - healed_at:.1f} s; "
          f"whole test {time.monotonic() - started:.1f} s")
