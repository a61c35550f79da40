#!/usr/bin/env python3
"""soak - a five-node herd under steady writes while a schedule of faults runs.

    python3 tests/soak/soak.py [--seconds 600] [--split] [--seed N]

Writers (client threads) send IAMATs with increasing client times to random
nodes and record every AT they get back; each client id is written 1 to 4
times and then retired, so its last acknowledged update is never overwritten
and a lost write shows. A prober per node sends an IAMAT for its own id
every 100 ms (every fifth a WHATSAT, which needs the bus and the places
worker; only WHATSATs while the node's disk is full, as it may rightly refuse
to acknowledge what it cannot store) and records the longest gap between
answers while the node is meant to be serving (alive, not SIGSTOPped,
started and ready). Meanwhile one fault at a time, from a seeded schedule
that holds every kind:

    kill9       kill -9 a node (sometimes the instant a writer got an AT from
                it), restart it after a random pause
    stop        SIGSTOP a node, SIGCONT it later (its probes are exempt)
    link        `herd link A B down` on one or both ends of an edge, then up
    partition   the herd cut in two: blackhole routes between the two sides'
                network namespaces (as root), else `herd link ... down` on both
                ends of every edge across the cut (said in the output)
    diskfull    the tmpfs holding one node's journal shrunk to what it uses
                (root only; skipped with a note otherwise), then grown back
    rogue       kill -9 a node, bind a rogue ZeroMQ ROUTER on its sync port and
                a PUB sending garbage on its bus port, then restart the node
    hashflood   thousands of distinct client ids in one pipelined burst, crafted
                to collide in herd_record_hash (common/herd_record.c)
    noread      clients that pipeline WHATSATs and never read
    isolated-kill9  a node cut off from all its neighbours takes writes alone
                (its disk full meanwhile, when it is the tmpfs node), then is
                killed -9 the instant a writer got an AT from it, and comes
                back: what it acknowledged must have been stored (the other
                kill -9s mostly hide a lost write, as the flood has already
                carried it to a neighbour)

Then every fault is healed, dead nodes restarted, and the checker waits
(bounded) for `herd digest` to agree, asks every node for every client
(WHATSAT: Places points at a closed port, so the answer is the AT line and an
error body at once) and checks that each holds the newest acknowledged
update or a newer one. It prints updates acknowledged, lost, faults
injected by kind, the worst stall and the convergence time, and exits
non-zero on any loss, a stall or convergence over its bound, or a node that
died by itself. Everything it starts is stopped, mounts unmounted and
namespaces deleted, also on Ctrl-C or an exception.
"""

import argparse
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import herdlib                      # noqa: E402
import netns                        # noqa: E402
from herdlib import (AT_RE, DEFAULT_EDGES, DEFAULT_NAMES, HERD_BIN, PYTHON, SLOW,  # noqa: E402
                     free_ports)

KINDS = ["kill9", "stop", "link", "partition", "diskfull", "rogue", "hashflood", "noread",
         "isolated-kill9"]
POSITION = "+34.068930-118.445127"
#  Ports inside a namespace: every host has its own port space, so fixed
#  ports below ip_local_port_range (32768-60999) are safe to rebind
NS_PORTS = {"client": 12000, "bus": 13000, "sync": 14000}
WHITE = set(b" \t\r\n\f\v\0")
MASK = (1 << 64) - 1


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# -- the record hash, to craft colliding client ids -------------------------------


def record_hash(data):
    """herd_record_hash of common/herd_record.c, in Python."""
    h = 0x9e3779b97f4a7c15 ^ len(data)
    i = 0
    while len(data) - i >= 8:
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * 0xff51afd7ed558ccd) & MASK
        h ^= h >> 32
        i += 8
    h ^= int.from_bytes(data[i:].ljust(8, b"\0"), "little")
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & MASK
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & MASK
    h ^= h >> 31
    return h


def colliding_ids(count, rng):
    """COUNT distinct 16-byte ids with one and the same herd_record_hash.

    The hash mixes one 8-byte word per step with hash = f((hash ^ word) * C):
    for any first word w0, the second word w1 = state(w0) ^ X brings every
    id to the same state X before the tail, so to the same hash."""
    assert record_hash(b"") == 0xe220a8397b1dcdaf, "herd_record_hash changed: update soak.py"
    target = 0x5a5a5a5a5a5a5a5a
    seed = (0x9e3779b97f4a7c15 ^ 16)
    ids, seen = [], set()
    while len(ids) < count:
        w0 = b"fl" + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6))
        h = ((seed ^ int.from_bytes(w0, "little")) * 0xff51afd7ed558ccd) & MASK
        h ^= h >> 32
        w1 = (h ^ target).to_bytes(8, "little")
        if WHITE.intersection(w1) or w0 in seen:
            continue
        seen.add(w0)
        ids.append(w0 + w1)
    first = record_hash(ids[0])
    assert all(record_hash(i) == first for i in ids[:50])
    return ids


# -- times ---------------------------------------------------------------------


def ns_str(ns):
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def str_ns(text):
    if isinstance(text, bytes):
        text = text.decode()
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


# -- the herd -------------------------------------------------------------------


class Cluster:
    """Five nodes from one generated config: each in its own network
    namespace (as root) or all on loopback; start, kill, signal, restart."""

    def __init__(self, tmp, split, use_netns, tmpfs_node):
        self.tmp, self.split = tmp, split
        self.names, self.edges = list(DEFAULT_NAMES), list(DEFAULT_EDGES)
        self.lab = None
        self.lock = threading.RLock()
        self.procs = {}
        self.mounted = []
        self.expected_exit = set()        # nodes we killed: their exits are ours
        if use_netns:
            self.lab = netns.Lab(len(self.names))
            try:
                self.lab.create()
            except BaseException:
                self.lab.destroy()
                raise
            self.host = {n: i for i, n in enumerate(self.names, 1)}
            self.addr = {n: self.lab.address(self.host[n]) for n in self.names}
            self.client_port = {n: NS_PORTS["client"] for n in self.names}
            self.bus_port = {n: NS_PORTS["bus"] for n in self.names}
            self.sync_port = {n: NS_PORTS["sync"] for n in self.names}
        else:
            ports = free_ports(3 * len(self.names))
            self.addr = {n: "127.0.0.1" for n in self.names}
            self.client_port = {n: ports[3 * i] for i, n in enumerate(self.names)}
            self.bus_port = {n: ports[3 * i + 1] for i, n in enumerate(self.names)}
            self.sync_port = {n: ports[3 * i + 2] for i, n in enumerate(self.names)}
        self.tmpfs_node = tmpfs_node
        if tmpfs_node:
            path = self.data_dir(tmpfs_node)
            os.makedirs(path)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "soak-journal", path],
                               capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                raise RuntimeError(f"mount tmpfs on {path}: {r.stderr.strip()}")
            self.mounted.append(path)
        lines = ["herd", f"    run_dir = {tmp}/run"]
        for n in self.names:
            a = self.addr[n]
            lines += [f"node = {n}", f"    client = {a}:{self.client_port[n]}",
                      f"    bus = tcp://{a}:{self.bus_port[n]}",
                      f"    sync = tcp://{a}:{self.sync_port[n]}",
                      f"    log = {tmp}/logs/{n}.log", f"    data = {self.data_dir(n)}"]
        lines += ["edges"] + [f"    edge = {a} {b}" for a, b in self.edges]
        #  The hosts' bus and sync addresses are not loopback: without CURVE
        #  the protected bus refuses them unless the file says so
        lines += ["security", "    curve = off"]
        lines += ["places", "    timeout_ms = 2000"]
        self.config = os.path.join(tmp, "herd.cfg")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = dict(os.environ)
        self.env["GOOGLE_API_KEY"] = "soak-key"
        #  Nothing listens on port 9: a WHATSAT's Places call fails at once
        self.env["HERD_PLACES_URL"] = "http://127.0.0.1:9/nearbysearch/json"

    def data_dir(self, name):
        return os.path.join(self.tmp, "data", name)

    def log_path(self, name):
        return os.path.join(self.tmp, "logs", f"{name}.log")

    def wrap(self, name, argv):
        return self.lab.exec_argv(self.host[name], argv) if self.lab else argv

    def connect(self, name, timeout):
        """A TCP client socket to NAME's gateway, from NAME's own host."""
        address = (self.addr[name], self.client_port[name])
        if self.lab:
            return self.lab.connect(self.host[name], address, timeout)
        return socket.create_connection(address, timeout=timeout)

    def start(self, name):
        with self.lock:
            roles = ["places", "bus", "gateway"] if self.split else [None]
            procs = []
            for role in roles:
                argv = [HERD_BIN, "node", name, "-c", self.config]
                if role:
                    argv += ["--role", role]
                err = open(os.path.join(self.tmp, f"{name}.stderr"), "ab")
                procs.append(subprocess.Popen(self.wrap(name, argv), env=self.env,
                                              stdout=subprocess.DEVNULL, stderr=err))
                err.close()
            self.procs[name] = procs
            self.expected_exit.discard(name)

    def ready(self, name, timeout=10):
        """Wait (bounded) until NAME accepts clients; False if it did not."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            with self.lock:
                procs = self.procs.get(name)
                if not procs or any(p.poll() is not None for p in procs):
                    return False
            try:
                self.connect(name, 1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def pids(self, name):
        with self.lock:
            return [p.pid for p in self.procs.get(name, [])]

    def signal(self, name, sig):
        with self.lock:
            for p in self.procs.get(name, []):
                if p.poll() is None:
                    try:
                        p.send_signal(sig)
                    except ProcessLookupError:
                        pass

    def kill(self, name):
        with self.lock:
            self.expected_exit.add(name)
            procs = self.procs.pop(name, [])
            for p in procs:
                try:
                    p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs:
            p.wait(10)

    def died(self):
        """{name: exit codes} of nodes that exited though nobody killed them."""
        dead = {}
        with self.lock:
            for n, procs in self.procs.items():
                codes = [p.poll() for p in procs]
                if any(c is not None for c in codes) and n not in self.expected_exit:
                    dead[n] = codes
        return dead

    def stop_all(self):
        """SIGCONT, then SIGTERM every node; {name: exit codes}."""
        codes = {}
        with self.lock:
            names = list(self.procs)
        for n in names:
            self.signal(n, signal.SIGCONT)
            procs = self.procs.pop(n, [])
            codes[n] = []
            for p in reversed(procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                try:
                    codes[n].insert(0, p.wait(15 * SLOW))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    codes[n].insert(0, "hung")
        return codes

    def herd_cmd(self, origin, *args, timeout=20):
        """`herd ARGS -c CONFIG`, run on ORIGIN's host."""
        argv = self.wrap(origin, [HERD_BIN, *args, "-c", self.config])
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=self.env,
                                  timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", "timed out")

    def neighbours(self, name):
        return [b for a, b in self.edges if a == name] + [a for a, b in self.edges if b == name]

    def route(self, name, peer, op):
        """Add or delete a blackhole route on NAME's host to PEER's address."""
        return self.lab._ip("-n", self.lab.namespace(self.host[name]), "route", op, "blackhole",
                            f"{self.addr[peer]}/32", check=False)

    def cleanup(self):
        errors = []
        with self.lock:
            for n in list(self.procs):
                for p in self.procs.pop(n):
                    try:
                        p.send_signal(signal.SIGCONT)
                        p.kill()
                        p.wait(10)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
        for path in self.mounted:
            r = subprocess.run(["umount", path], capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                r = subprocess.run(["umount", "-l", path], capture_output=True, text=True,
                                   timeout=20)
                if r.returncode != 0:
                    errors.append(f"umount {path}: {r.stderr.strip()}")
        self.mounted = []
        if self.lab:
            try:
                self.lab.destroy()
            except RuntimeError as e:
                errors.append(str(e))
            self.lab = None
        return errors


# -- what was acknowledged, and who was meant to serve ------------------------------


class Ledger:
    """Every acknowledged update's newest time per client; each node's state
    for the stall accounting; the fault log."""

    def __init__(self, names):
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.newest = {}                  # client -> (time ns, acking node, at seconds)
        self.acks = {"writers": 0, "probes": 0, "flood": 0}
        self.serving = {n: True for n in names}
        #  Disk full: a node may rightly refuse to acknowledge what it cannot
        #  store, so its prober asks only WHATSATs, which it must still answer
        self.read_only = {n: False for n in names}
        self.since = {n: time.monotonic() for n in names}  # serving since
        self.worst = (0.0, None, 0.0)     # (gap s, node, when)
        self.slowest_restart = (0.0, None)
        self.faults = {k: 0 for k in KINDS}
        self.notes = []
        self.events = []
        self.kill_after_ack = None        # node to kill the moment a writer got its AT
        self.kill_hook = None
        self.errors = []

    def now(self):
        return time.monotonic() - self.t0

    def event(self, text):
        line = f"  +{self.now():6.1f} s  {text}"
        with self.lock:
            self.events.append(line)
        log(line)

    def ack(self, kind, client, when_ns, node):
        hook = None
        with self.lock:
            self.acks[kind] += 1
            old = self.newest.get(client)
            if old is None or when_ns > old[0]:
                self.newest[client] = (when_ns, node, self.now())
            if self.kill_after_ack == node and kind == "writers":
                self.kill_after_ack, hook = None, self.kill_hook
        if hook:
            hook(node)
        return hook is not None

    def restarted(self, name, seconds):
        with self.lock:
            if seconds > self.slowest_restart[0]:
                self.slowest_restart = (seconds, name)

    def set_serving(self, name, serving):
        with self.lock:
            self.serving[name] = serving
            if serving:
                self.since[name] = time.monotonic()

    def gap(self, name, last, now):
        """The gap since LAST, counted only from when NAME began serving."""
        with self.lock:
            if not self.serving[name]:
                return 0.0
            start = max(last, self.since[name])
        g = now - start
        with self.lock:
            if g > self.worst[0]:
                self.worst = (g, name, self.now())
        return g


# -- writers and probers ----------------------------------------------------------


def read_line(sock, buffer, deadline):
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buffer += chunk
    line, rest = buffer.split(b"\n", 1)
    return line, rest


class Clock:
    """Strictly increasing client times near now (IAMATs far ahead are refused)."""

    def __init__(self):
        self.last = {}

    def next(self, client):
        t = max(time.time_ns(), self.last.get(client, 0) + 1)
        self.last[client] = t
        return t


def writer(cluster, ledger, stop, index, active, rate, rng):
    """IAMATs for ACTIVE client ids at a time, each written 1 to 4 times and
    then never again, so that every client's last write is one that must
    survive: a lost write stays lost instead of being overwritten by the
    next. The client whose AT triggered a kill -9 is retired at once."""
    conns, clock = {}, Clock()
    pause = 1.0 / rate
    serial = 0

    def fresh():
        nonlocal serial
        serial += 1
        return [f"c{index}-{serial - 1}", rng.randint(1, 4)]
    clients = [fresh() for _ in range(active)]
    while not stop.is_set():
        name = rng.choice(cluster.names)
        slot = rng.randrange(len(clients))
        client = clients[slot][0]
        try:
            if name not in conns:
                conns[name] = [cluster.connect(name, 1.0), b""]
            sock, buf = conns[name]
            t = clock.next(client)
            sock.sendall(f"IAMAT {client} {POSITION} {ns_str(t)}\n".encode())
            line, conns[name][1] = read_line(sock, buf, time.monotonic() + 2.0 * SLOW)
            m = AT_RE.match(line)
            if m and m.group(3).decode() == client and str_ns(m.group(5)) == t:
                clients[slot][1] -= 1
                if ledger.ack("writers", client, t, m.group(1).decode()):
                    clients[slot][1] = 0
                if clients[slot][1] <= 0:
                    clients[slot] = fresh()
            else:
                raise ValueError(f"unexpected answer {line[:120]!r}")
        except (OSError, EOFError, TimeoutError, ValueError):
            if name in conns:
                conns.pop(name)[0].close()
            time.sleep(0.02)
        time.sleep(pause * rng.uniform(0.5, 1.5))
    for sock, _ in conns.values():
        sock.close()


def read_answer(sock, buffer, deadline):
    """A whole answer: one line, or a WHATSAT's AT line, JSON and blank line."""
    line, buffer = read_line(sock, buffer, deadline)
    if line.startswith(b"AT ") and buffer is not None:
        while b"\n\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no end of the WHATSAT answer")
            sock.settimeout(left)
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed")
            buffer += chunk
        buffer = buffer.split(b"\n\n", 1)[1]
    return line, buffer


def prober(cluster, ledger, stop, name):
    """Every 100 ms an IAMAT for the node's probe id; every fifth probe is a
    WHATSAT for it instead, which goes through the bus and places worker."""
    client, clock = f"probe-{name}", Clock()
    sock, buf, last, count = None, b"", time.monotonic(), 0
    while not stop.is_set():
        tick = time.monotonic()
        count += 1
        try:
            if sock is None:
                sock, buf = cluster.connect(name, 1.0), b""
            if count % 5 == 0 or ledger.read_only[name]:
                sock.sendall(f"WHATSAT {client} 1 1\n".encode())
                line, buf = read_answer(sock, buf, time.monotonic() + 1.0 * SLOW)
                if not (line.startswith(b"AT ") or line.startswith(b"? WHATSAT")):
                    raise ValueError(line[:120])
                t = None
            else:
                t = clock.next(client)
                sock.sendall(f"IAMAT {client} {POSITION} {ns_str(t)}\n".encode())
                line, buf = read_line(sock, buf, time.monotonic() + 1.0 * SLOW)
                m = AT_RE.match(line)
                if not (m and str_ns(m.group(5)) == t):
                    raise ValueError(line[:120])
            now = time.monotonic()
            ledger.gap(name, last, now)
            if t is not None:
                ledger.ack("probes", client, t, name)
            last = now
        except (OSError, EOFError, TimeoutError, ValueError):
            if sock:
                sock.close()
            sock = None
            ledger.gap(name, last, time.monotonic())
        stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))
    if sock:
        sock.close()
    ledger.gap(name, last, time.monotonic())


# -- faults -----------------------------------------------------------------------


ROGUE = r"""
import sys, time, zmq
sync, bus, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER); router.setsockopt(zmq.LINGER, 0); router.bind(sync)
pub = ctx.socket(zmq.PUB); pub.setsockopt(zmq.LINGER, 0); pub.bind(bus)
print("bound", flush=True)
poller = zmq.Poller(); poller.register(router, zmq.POLLIN)
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    n += 1
    pub.send_multipart([b"UPDATE", b"\xff" * 7, b"AT Evil +0.1 x +1+1 99999999999", b"%d" % n])
    pub.send(b"\x00garbage %d" % n)
    for s, _ in poller.poll(50):
        frames = s.recv_multipart()
        s.send_multipart([frames[0], b"KTHXBAI", b"\xfe\xff", b"AT Evil +0.1 y +1+1 1"])
"""


class Faults:
    def __init__(self, cluster, ledger, rng, args):
        self.cluster, self.ledger, self.rng, self.args = cluster, ledger, rng, args
        self.down = set()           # killed, to be restarted
        self.stopped = set()
        self.links_down = set()     # (node, peer)
        self.routes = set()         # (node, peer) blackholes
        self.disk_small = False
        self.rogues = []
        self.noread_socks = []
        ledger.kill_hook = self.kill_now

    # -- helpers --
    def kill_now(self, name):
        self.ledger.set_serving(name, False)
        self.cluster.kill(name)
        self.down.add(name)

    def restart(self, name):
        """Start NAME again and wait (bounded) until it accepts clients. A node
        that is still starting at the bound is killed and left for the
        final heal; one that exits is tried again, three times in all."""
        for attempt in range(3):
            begin = time.monotonic()
            self.cluster.start(name)
            ok = self.cluster.ready(name, self.args.restart_bound)
            took = time.monotonic() - begin
            if ok:
                self.down.discard(name)
                self.ledger.set_serving(name, True)
                self.ledger.restarted(name, took)
                if took > 5 * SLOW:
                    self.ledger.event(f"{name} took {took:.1f} s to accept clients after restart")
                return True
            codes = [p.poll() for p in self.cluster.procs.get(name, [])]
            self.cluster.kill(name)
            self.down.add(name)
            if all(c is None for c in codes):
                self.ledger.event(f"{name} not accepting clients {took:.0f} s after restart; killed")
                self.ledger.errors.append(f"{name} did not accept clients within {took:.0f} s "
                                          f"of a restart")
                return False
            self.ledger.event(f"restart of {name} failed (attempt {attempt + 1}, exits {codes})")
            time.sleep(1.0)
        self.ledger.errors.append(f"{name} could not be restarted (it exits)")
        return False

    def link(self, a, b, state):
        r = self.cluster.herd_cmd(a, "link", a, b, state)
        if r.returncode != 0:
            self.ledger.event(f"herd link {a} {b} {state} failed: {(r.stderr or r.stdout).strip()}")
            return False
        return True

    def sleep(self, seconds, stop):
        stop.wait(seconds)

    # -- the kinds --
    def kill9(self, name, hold, stop, after_ack=None, before_restart=None):
        if after_ack is None:
            after_ack = self.rng.random() < 0.5
        if after_ack:
            self.ledger.kill_after_ack = name
            deadline = time.monotonic() + 5
            while self.ledger.kill_after_ack == name and time.monotonic() < deadline:
                time.sleep(0.005)
            if self.ledger.kill_after_ack == name:      # no writer came by
                self.ledger.kill_after_ack = None
                after_ack = False
                self.kill_now(name)
        else:
            self.kill_now(name)
        self.ledger.event(f"kill -9 {name}" + (" (the instant a writer got its AT)"
                                                if after_ack else ""))
        self.sleep(self.rng.uniform(0.2, hold), stop)
        if before_restart:
            before_restart()
        if self.restart(name):
            self.ledger.event(f"restarted {name}")

    def stop(self, name, hold, stop):
        self.ledger.set_serving(name, False)
        self.stopped.add(name)
        self.cluster.signal(name, signal.SIGSTOP)
        self.ledger.event(f"SIGSTOP {name} for {hold:.1f} s")
        self.sleep(hold, stop)
        self.cluster.signal(name, signal.SIGCONT)
        self.stopped.discard(name)
        self.ledger.set_serving(name, True)
        self.ledger.event(f"SIGCONT {name}")

    def cut(self, a, b, hold, stop):
        both = self.rng.random() < 0.5
        pairs = [(a, b), (b, a)] if both else [(a, b)]
        for x, y in pairs:
            if self.link(x, y, "down"):
                self.links_down.add((x, y))
        self.ledger.event(f"link cut {a}-{b} ({'both ends' if both else a + ' end'}) "
                          f"for {hold:.1f} s")
        self.sleep(hold, stop)
        self.heal_links()
        self.ledger.event(f"link {a}-{b} up")

    def isolate(self, side):
        """Cut the nodes of SIDE off from the others; how it was done."""
        other = set(self.cluster.names) - side
        if self.cluster.lab:
            for a in side:
                for b in other:
                    self.cluster.route(a, b, "add")
                    self.cluster.route(b, a, "add")
                    self.routes |= {(a, b), (b, a)}
            return "blackhole routes between the namespaces"
        for a, b in self.cluster.edges:
            if (a in side) != (b in side):
                for x, y in ((a, b), (b, a)):
                    if self.link(x, y, "down"):
                        self.links_down.add((x, y))
        return "emulated: herd link down on both ends of each edge across the cut"

    def isolated_kill9(self, hold, stop):
        c = self.cluster
        name = c.tmpfs_node if c.tmpfs_node and self.rng.random() < 0.5 else self.rng.choice(c.names)
        how = self.isolate({name})
        self.ledger.event(f"{name} isolated ({how}); it takes writes alone")
        self.sleep(hold * 0.4, stop)
        full = name == c.tmpfs_node and self.shrink_disk()
        if full:
            self.ledger.event(f"disk full on isolated {name}")
            self.sleep(hold * 0.3, stop)
        self.kill9(name, hold * 0.3, stop, after_ack=True,
                   before_restart=self.heal_disk if full else None)
        self.heal_partition()
        self.ledger.event(f"{name} back in the herd")

    def partition(self, hold, stop):
        names = list(self.cluster.names)
        self.rng.shuffle(names)
        side = set(names[:self.rng.choice([1, 2])])
        other = set(names) - side
        how = self.isolate(side)
        self.ledger.event(f"partition {sorted(side)} | {sorted(other)} for {hold:.1f} s ({how})")
        self.sleep(hold, stop)
        self.heal_partition()
        self.ledger.event("partition healed")

    def diskfull(self, hold, stop):
        node = self.cluster.tmpfs_node
        if not node:
            self.ledger.event("disk full skipped: needs root for a tmpfs data directory")
            return False
        if not self.shrink_disk():
            return False
        self.ledger.event(f"disk full on {node} for {hold:.1f} s")
        self.sleep(hold, stop)
        self.heal_disk()
        self.ledger.event(f"disk on {node} grown back to 64 MiB")
        return True

    def shrink_disk(self):
        """Shrink the tmpfs node's data directory to what it holds."""
        path = self.cluster.data_dir(self.cluster.tmpfs_node)
        st = os.statvfs(path)
        used_kb = (st.f_blocks - st.f_bfree) * st.f_frsize // 1024
        for size in (used_kb, used_kb + 4):     # tmpfs may refuse less than it holds
            r = subprocess.run(["mount", "-o", f"remount,size={size}k", path],
                               capture_output=True, text=True, timeout=20)
            if r.returncode == 0:
                break
        if r.returncode != 0:
            self.ledger.event(f"disk full skipped: remount failed: {r.stderr.strip()}")
            return False
        self.disk_small = True
        self.ledger.read_only[self.cluster.tmpfs_node] = True
        return True

    def rogue(self, name, hold, stop):
        self.kill_now(name)
        c = self.cluster
        a = c.addr[name]
        argv = c.wrap(name, [PYTHON, "-c", ROGUE, f"tcp://{a}:{c.sync_port[name]}",
                             f"tcp://{a}:{c.bus_port[name]}", str(hold)])
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.rogues.append(p)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        bound = bool(ready) and p.stdout.readline().strip() == b"bound"
        self.ledger.event(f"kill -9 {name}; rogue ROUTER on its sync port and PUB on its bus "
                          f"port for {hold:.1f} s" + ("" if bound else " (rogue failed to bind)"))
        try:
            p.wait(hold + 10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.rogues.remove(p)
        self.ledger.event(f"rogue gone, restarting {name}")
        if self.restart(name):
            self.ledger.event(f"restarted {name}")

    def hashflood(self, name, count, stop):
        ids = colliding_ids(count, self.rng)
        sample = set(self.rng.sample(range(len(ids)), min(100, len(ids))))
        t = time.time_ns()
        payload = b"".join(b"IAMAT %s %s %s\n" % (i, POSITION.encode(), ns_str(t).encode())
                           for i in ids)
        acked, start = 0, time.monotonic()
        try:
            sock = self.cluster.connect(name, 2.0)
        except OSError as e:
            self.ledger.event(f"hash flood at {name} could not connect: {e}")
            return
        sock.setblocking(False)
        sent, buf, deadline = 0, b"", time.monotonic() + 60 * SLOW
        try:
            while acked < len(ids) and time.monotonic() < deadline and not stop.is_set():
                want_w = [sock] if sent < len(payload) else []
                r, w, _ = select.select([sock], want_w, [], 0.2)
                if w:
                    try:
                        sent += sock.send(payload[sent:sent + 262144])
                    except BlockingIOError:
                        pass
                if r:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.startswith(b"AT ") and acked in sample:
                            m = AT_RE.match(line)
                            if m:
                                self.ledger.ack("flood", m.group(3), t, name)
                        elif line.startswith(b"AT "):
                            with self.ledger.lock:
                                self.ledger.acks["flood"] += 1
                        acked += 1
        except OSError as e:
            self.ledger.event(f"hash flood connection: {e}")
        finally:
            sock.close()
        self.ledger.event(f"hash flood at {name}: {len(ids)} ids colliding in herd_record_hash, "
                          f"{acked} answered in {time.monotonic() - start:.1f} s")

    def noread(self, name, hold, stop):
        socks = []
        line = b"WHATSAT c0-0 10 20\n"
        for _ in range(20):
            try:
                s = self.cluster.connect(name, 2.0)
            except OSError:
                continue
            s.setblocking(False)
            socks.append([s, line * 20000, 0])
        self.noread_socks = socks
        self.ledger.event(f"{len(socks)} never-reading clients pipelining WHATSATs at {name} "
                          f"for {hold:.1f} s")
        end = time.monotonic() + hold
        while time.monotonic() < end and not stop.is_set():
            for entry in socks:
                s, data, off = entry
                if off < len(data):
                    try:
                        entry[2] += s.send(data[off:off + 65536])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        entry[2] = len(data)
            time.sleep(0.05)
        self.heal_noread()
        self.ledger.event(f"never-reading clients at {name} closed")

    # -- healing everything --
    def heal_links(self):
        for x, y in sorted(self.links_down):
            self.link(x, y, "up")
        self.links_down.clear()

    def heal_partition(self):
        for x, y in sorted(self.routes):
            self.cluster.route(x, y, "del")
        self.routes.clear()
        self.heal_links()

    def heal_disk(self):
        if self.disk_small:
            subprocess.run(["mount", "-o", "remount,size=64m",
                            self.cluster.data_dir(self.cluster.tmpfs_node)],
                           capture_output=True, timeout=20)
            self.disk_small = False
            self.ledger.read_only[self.cluster.tmpfs_node] = False

    def heal_noread(self):
        for s, _, _ in self.noread_socks:
            s.close()
        self.noread_socks = []

    def heal_all(self):
        for p in list(self.rogues):
            p.kill()
            p.wait()
        self.rogues = []
        for n in list(self.stopped):
            self.cluster.signal(n, signal.SIGCONT)
            self.ledger.set_serving(n, True)
        self.stopped.clear()
        self.heal_partition()
        self.heal_disk()
        self.heal_noread()
        for n in sorted(self.down):
            self.restart(n)
        #  Nodes that died by themselves: counted as errors, restarted for the check
        for n, codes in self.cluster.died().items():
            self.ledger.errors.append(f"{n} exited by itself ({codes})")
            self.ledger.set_serving(n, False)
            self.cluster.kill(n)
            self.restart(n)


def schedule(seconds, rng):
    """[(start s, kind, hold s)]: one fault at a time, every kind in each round."""
    slot = max(4.0, min(15.0, (seconds - 2.0) / len(KINDS)))
    plan, t = [], 1.0
    while t + slot <= seconds + 0.01:
        kinds = list(KINDS)
        rng.shuffle(kinds)
        for k in kinds:
            if t + slot > seconds + 0.01:
                break
            plan.append((t, k, slot * rng.uniform(0.4, 0.6)))
            t += slot
    return plan


def run_faults(faults, plan, stop, args):
    c, rng, ledger = faults.cluster, faults.rng, faults.ledger
    for start, kind, hold in plan:
        while ledger.now() < start and not stop.is_set():
            stop.wait(min(0.1, start - ledger.now()))
        if stop.is_set():
            return
        try:
            #  A node that died by itself is an error; restart it to go on
            for n, codes in c.died().items():
                ledger.errors.append(f"{n} exited by itself ({codes}) at +{ledger.now():.1f} s")
                ledger.event(f"{n} EXITED BY ITSELF ({codes}); restarting it")
                ledger.set_serving(n, False)
                c.kill(n)
                faults.restart(n)
            name = rng.choice(c.names)
            if kind == "kill9":
                faults.kill9(name, hold, stop)
            elif kind == "stop":
                faults.stop(name, hold, stop)
            elif kind == "link":
                a, b = rng.choice(c.edges)
                faults.cut(a, b, hold, stop)
            elif kind == "partition":
                faults.partition(hold, stop)
            elif kind == "diskfull":
                if not faults.diskfull(hold, stop):
                    ledger.notes.append("disk full skipped (needs root)")
                    continue
            elif kind == "rogue":
                faults.rogue(name, hold, stop)
            elif kind == "hashflood":
                faults.hashflood(name, args.flood, stop)
            elif kind == "noread":
                faults.noread(name, hold, stop)
            elif kind == "isolated-kill9":
                faults.isolated_kill9(hold, stop)
            ledger.faults[kind] += 1
        except Exception:
            ledger.errors.append(f"fault {kind} raised: {traceback.format_exc(limit=3)}")
            ledger.event(f"fault {kind} raised an exception (see the summary)")


# -- the check --------------------------------------------------------------------


def converge(cluster, ledger, bound):
    """Seconds until `herd digest` agrees (polled up to 30 s), or None."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < max(30.0, bound * 3) * SLOW:
        r = cluster.herd_cmd(cluster.names[0], "digest", timeout=10)
        if r.returncode == 0:
            return time.monotonic() - start, r.stdout
        last = r.stdout + r.stderr
        time.sleep(0.1)
    return None, last


def held_times(cluster, name, clients, timeout):
    """{client: held time ns or None} at NAME, by WHATSATs pipelined 500 at a
    time (the node reads no further than max_pending ahead of its answers)."""
    held = {}
    sock = cluster.connect(name, 5.0)
    try:
        buf = b""
        for i in range(0, len(clients), 500):
            chunk = clients[i:i + 500]
            sock.settimeout(timeout * SLOW)
            sock.sendall(b"".join(b"WHATSAT %s 1 1\n" % (c if isinstance(c, bytes) else c.encode())
                                  for c in chunk))
            deadline = time.monotonic() + timeout * SLOW
            for c in chunk:
                line, buf = read_answer(sock, buf, deadline)
                m = AT_RE.match(line)
                held[c] = str_ns(m.group(5)) if m else None
    finally:
        sock.close()
    return held


def check(cluster, ledger, faults):
    lost = []            # (client, newest acked, acking node, at, {node: held})
    with ledger.lock:
        newest = dict(ledger.newest)
    clients = sorted(newest, key=lambda c: c if isinstance(c, bytes) else c.encode())
    held = {}
    for n in cluster.names:
        try:
            held[n] = held_times(cluster, n, clients, 30)
        except (OSError, EOFError, TimeoutError) as e:
            ledger.errors.append(f"could not read the records of {n} (not checked "
                                 f"there): {e}")
            held[n] = None
    missing_pairs = 0
    readable = [n for n in cluster.names if held[n] is not None]
    for c in clients:
        t, node, at = newest[c]
        short = {n: held[n].get(c) for n in readable
                 if held[n].get(c) is None or held[n][c] < t}
        if short:
            missing_pairs += len(short)
            lost.append((c, t, node, at, short))
    return len(clients), lost, missing_pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--split", action="store_true", help="one process per role")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--clients", type=int, default=25, help="client ids each writer has on the go")
    ap.add_argument("--rate", type=float, default=100, help="IAMATs per second per writer")
    ap.add_argument("--flood", type=int, default=None,
                    help="ids in a hash flood (default 20000; 5000 for runs under 120 s)")
    ap.add_argument("--stall-bound", type=float, default=2.0,
                    help="longest a serving node may go without answering, s (x3 under ASan)")
    ap.add_argument("--converge-bound", type=float, default=2.0,
                    help="digests must agree this long after healing, s (x3 under ASan)")
    ap.add_argument("--restart-bound", type=float, default=60,
                    help="a restarted node must accept clients within this, s (x3 under ASan)")
    ap.add_argument("--no-netns", action="store_true", help="run on loopback even as root")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    if args.flood is None:
        args.flood = 5000 if args.seconds < 120 else 20000
    stall_bound, converge_bound = args.stall_bound * SLOW, args.converge_bound * SLOW
    rng = random.Random(args.seed)

    #  Ctrl-C and SIGTERM unwind through the finally below
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    tmp = tempfile.mkdtemp(prefix="herd-soak-")
    root = os.geteuid() == 0
    use_netns = root and not args.no_netns and netns.ip_command() is not None
    cluster, faults, threads = None, None, []
    stop_faults, stop_load = threading.Event(), threading.Event()
    status = 2
    try:
        try:
            cluster = Cluster(tmp, args.split, use_netns, DEFAULT_NAMES[-1] if root else None)
        except netns.Unavailable as e:
            log(f"soak: network namespaces unavailable ({e}); running on loopback")
            use_netns = False
            cluster = Cluster(tmp, args.split, False, DEFAULT_NAMES[-1] if root else None)
        log(f"soak: {args.seconds:.0f} s, seed {args.seed}, {'split' if args.split else 'inproc'} "
            f"nodes, {HERD_BIN}{' (ASan)' if herdlib.SANITIZED else ''}")
        log(f"soak: herd {'in five network namespaces' if use_netns else 'on loopback'}; "
            f"partition by {'blackhole routes' if use_netns else 'emulation (herd link down)'}; "
            f"disk full {'on ' + cluster.tmpfs_node + ' (tmpfs)' if cluster.tmpfs_node else 'skipped (not root)'}")
        for n in cluster.names:
            cluster.start(n)
        for n in cluster.names:
            if not cluster.ready(n):
                raise RuntimeError(f"{n} did not start: see {cluster.tmp}/{n}.stderr")
        ledger = Ledger(cluster.names)
        faults = Faults(cluster, ledger, rng, args)
        for w in range(args.writers):
            threads.append(threading.Thread(target=writer, daemon=True, args=(
                cluster, ledger, stop_load, w, args.clients, args.rate,
                random.Random(rng.random()))))
        for n in cluster.names:
            threads.append(threading.Thread(target=prober, daemon=True,
                                            args=(cluster, ledger, stop_load, n)))
        for t in threads:
            t.start()
        plan = schedule(args.seconds, rng)
        log(f"soak: {len(plan)} faults scheduled, one at a time")
        fault_thread = threading.Thread(target=run_faults, daemon=True,
                                        args=(faults, plan, stop_faults, args))
        fault_thread.start()
        threads.append(fault_thread)
        fault_thread.join(args.seconds + 120 * SLOW)
        if fault_thread.is_alive():
            ledger.errors.append("the fault schedule did not finish in time")
            stop_faults.set()
            fault_thread.join(60)
        while ledger.now() < args.seconds:
            time.sleep(0.1)
        stop_load.set()
        for t in threads:
            t.join(10 * SLOW)
        #  Heal, restart, converge, check
        ledger.event("healing everything")
        faults.heal_all()
        took, digest = converge(cluster, ledger, converge_bound)
        if took is None:
            ledger.event("digests did not agree within 30 s")
        else:
            ledger.event(f"digests agree after {took:.2f} s")
        checked, lost, pairs = check(cluster, ledger, faults)
        codes = cluster.stop_all()
        unclean = {n: c for n, c in codes.items() if any(x != 0 for x in c)}

        # -- the summary --
        total = sum(ledger.acks.values())
        log("")
        log("soak summary")
        log(f"  updates acknowledged: {total} (writers {ledger.acks['writers']}, probes "
            f"{ledger.acks['probes']}, hash flood {ledger.acks['flood']}); "
            f"{checked} clients checked at every node (flood: a sample of 100 per burst)")
        log(f"  lost: {len(lost)} clients' newest acknowledged update missing "
            f"({pairs} client-node pairs)")
        by_node = {}
        for c, t, node, at, short in lost:
            by_node.setdefault(node, []).append(at)
        for node, ats in sorted(by_node.items()):
            log(f"    acknowledged by {node}: {len(ats)}, acked between +{min(ats):.1f} s and "
                f"+{max(ats):.1f} s (see the fault log above)")
        for c, t, node, at, short in lost[:10]:
            held = ", ".join(f"{n}: {'none' if h is None else f'{(h - t) / 1e9:+.3f} s'}"
                             for n, h in short.items())
            cs = c.decode(errors="backslashreplace") if isinstance(c, bytes) else c
            log(f"    {cs} acked by {node} at +{at:.1f} s; held {held}")
        if len(lost) > 10:
            log(f"    ... and {len(lost) - 10} more")
        log("  faults injected: " + ", ".join(f"{k} {v}" for k, v in ledger.faults.items()))
        for note in sorted(set(ledger.notes)):
            log(f"    note: {note}")
        gap, where, when = ledger.worst
        log(f"  worst stall: {gap:.2f} s at {where} (+{when:.1f} s); bound {stall_bound:.1f} s")
        log(f"  slowest restart: {ledger.slowest_restart[0]:.1f} s"
            + (f" ({ledger.slowest_restart[1]})" if ledger.slowest_restart[1] else ""))
        log("  convergence: " + (f"{took:.2f} s after healing" if took is not None else
                                 "none within 30 s") + f"; bound {converge_bound:.1f} s")
        if took is None:
            log("    " + digest.strip().replace("\n", "\n    "))
        if unclean:
            log(f"  nodes that did not stop cleanly on SIGTERM: {unclean}")
        for e in ledger.errors:
            log(f"  error: {e.strip()}")
        problems = []
        if lost:
            problems.append("lost updates")
        if gap > stall_bound:
            problems.append("stall over the bound")
        if took is None or took > converge_bound:
            problems.append("slow or no convergence")
        if ledger.errors:
            problems.append("errors")
        if unclean:
            problems.append("unclean stop")
        if problems or args.keep:
            log(f"  logs: {tmp}/logs")
        log("soak: " + ("FAILED (" + ", ".join(problems) + ")" if problems else "ok"))
        log(f"soak: {0 if problems else 1} passed, {1 if problems else 0} failed")
        status = 1 if problems else 0
    except KeyboardInterrupt:
        log("soak: interrupted; cleaning up")
        status = 130
    except Exception:
        traceback.print_exc()
        log("soak: 0 passed, 1 failed")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_faults.set()
        stop_load.set()
        for t in threads:               # each of their waits is bounded
            t.join(15 * SLOW)
        if faults:
            for p in faults.rogues:
                p.kill()
                p.wait()
            faults.heal_noread()
        if cluster:
            for e in cluster.cleanup():
                log(f"soak: cleanup: {e}")
        if status == 0 and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
