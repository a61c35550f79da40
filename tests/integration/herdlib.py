"""herdlib - start real herds on loopback for the integration tests, and talk to them.

Every wait is a bounded poll; everything started is stopped by the fixtures.
"""

import fcntl
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERD_BIN = os.environ.get("HERD_BIN", os.path.join(ROOT, "build", "release", "bin", "herd"))
STANDIN = os.path.join(ROOT, "tests", "places_standin.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SANITIZED = os.environ.get("HERD_SAN") == "1"
#  Sanitized builds start and run slower: scale the bounds, never the checks
SLOW = 3.0 if SANITIZED else 1.0

DEFAULT_NAMES = ["Hill", "Jaquez", "Smith", "Singleton", "Campbell"]
DEFAULT_EDGES = [("Hill", "Jaquez"), ("Hill", "Smith"), ("Singleton", "Jaquez"),
                 ("Singleton", "Smith"), ("Singleton", "Campbell"), ("Smith", "Campbell")]

#  The wire version of this build's bus (common/herd_msg.h)
WIRE_VERSION = 2


def envelope(herd_name="test", version=WIRE_VERSION):
    """The envelope frame every bus message and control request carries
    after its command frame: version byte, then the herd's name."""
    return bytes([version]) + herd_name.encode()


AT_RE = re.compile(rb"^AT (\S+) ([+-]\d+\.\d{9}) (\S+) (\S+) (\S+)$")


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Poll predicate until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f} s waiting for {what}")
        time.sleep(interval)


#  Ports handed out in this process (a pytest session): never twice, so a
#  restarted node never finds its port taken by an earlier test's leftovers
_ports_given = set()
_port_rng = random.Random()


def _outgoing_port_range():
    """The kernel's range of local ports for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _port_pool():
    """Ports to pick from: 20000 up to the kernel's outgoing range, or above
    it when that leaves too few. Inside the range, a neighbour's ZeroMQ
    reconnect can take a dead node's port as its own local port, and the
    node cannot bind it again until that connection is gone (90 s and more
    were seen). HERD_PORT_SLICE=i/n keeps to the i-th of n equal slices, so
    test sessions running at once (make test runs two) never pick the same
    port between its check and the node's bind."""
    low, high = _outgoing_port_range()
    if low - 20000 >= 2000:
        pool = range(20000, low)
    elif 65535 - high >= 2000:
        pool = range(high + 1, 65536)
    else:
        pool = range(1024, low)
    index, _, count = os.environ.get("HERD_PORT_SLICE", "0/1").partition("/")
    index, count = int(index), int(count)
    size = len(pool) // count
    return pool[index * size:(index + 1) * size]


def free_ports(count):
    """COUNT distinct ports bindable on 127.0.0.1, outside the kernel's range
    for outgoing connections (ip_local_port_range), none given out before in
    this process."""
    pool = _port_pool()
    if len(pool) - len(_ports_given) < 4 * count:
        _ports_given.clear()            # a very long session: start over
    socks, ports = [], []
    try:
        for _ in range(50 * count + 1000):
            if len(ports) == count:
                break
            port = _port_rng.choice(pool)
            if port in _ports_given:
                continue
            _ports_given.add(port)
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    if len(ports) < count:
        raise AssertionError(f"could not find {count} free ports in {pool}")
    return ports


class Client:
    """A TCP client of one node, with bounded reads."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        self.buffer = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by the node")
        self.buffer += chunk

    def read_line(self):
        """One response line, without its newline."""
        while b"\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def read_whatsat(self):
        """A WHATSAT answer: (at_line, json_bytes), or ('? ...' line, None)."""
        first = self.read_line()
        if first.startswith(b"? "):
            return first, None
        while b"\n\n" not in self.buffer:
            self._fill()
        body, self.buffer = self.buffer.split(b"\n\n", 1)
        return first, body

    def read_all(self):
        """Everything until the node closes the connection."""
        while True:
            try:
                self._fill()
            except EOFError:
                data, self.buffer = self.buffer, b""
                return data

    def request(self, line):
        self.send(line + "\n" if isinstance(line, str) else line + b"\n")
        return self.read_line()

    def close(self):
        self.sock.close()


def iamat(port, client, position, when):
    """Send one IAMAT on a new connection and return its AT line."""
    c = Client(port)
    try:
        return c.request(f"IAMAT {client} {position} {when}")
    finally:
        c.close()


def whatsat(port, client, radius=10, bound=5):
    c = Client(port)
    try:
        c.send(f"WHATSAT {client} {radius} {bound}\n")
        return c.read_whatsat()
    finally:
        c.close()


class PipeLog:
    """A node's log file made a FIFO with a small pipe, read by a thread of
    the test that can stop reading (a hung disk): once the pipe is full the
    node's log writer blocks in write(). text is what was read. Made before
    the node starts; close() after it stopped."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, 4096)     # fills with a few lines
        self.text = bytearray()
        self.reading = threading.Event()
        self.reading.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._drain)
        self.thread.start()

    def _drain(self):
        while not self.done.is_set():
            if self.reading.is_set() and select.select([self.fd], [], [], 0.05)[0]:
                try:
                    self.text.extend(os.read(self.fd, 65536))
                except BlockingIOError:
                    pass
            else:
                time.sleep(0.05)

    def pause(self):
        self.reading.clear()

    def resume(self):
        self.reading.set()

    def close(self):
        self.reading.set()
        self.done.set()
        self.thread.join()
        os.close(self.fd)


class Standin:
    """The project's stand-in Places server, on a free port."""

    def __init__(self, tmp_path, latency_ms=0):
        port_file = os.path.join(tmp_path, "standin.port")
        self.proc = subprocess.Popen(
            [PYTHON, STANDIN, "--port", "0", "--port-file", port_file, "--latency-ms", str(latency_ms)],
            stdout=subprocess.DEVNULL)
        self.port = int(wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                                 10, what="stand-in port file"))
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/maps/api/place/nearbysearch/json"

    def control(self, path):
        with urllib.request.urlopen(self.base + path, timeout=5) as reply:
            return json.loads(reply.read())

    def mode(self, mode=None, latency_ms=None):
        query = []
        if mode is not None:
            query.append(f"mode={mode}")
        if latency_ms is not None:
            query.append(f"latency_ms={latency_ms}")
        return self.control("/_standin/mode?" + "&".join(query))

    def stats(self):
        return self.control("/_standin/stats")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Herd:
    """A herd of real nodes on loopback, from a generated config."""

    def __init__(self, tmp_path, names=None, edges=None, split=False, places_url=None,
                 key="test-key-123", extra_herd="", places_extra="", curve=False,
                 herd_name="test"):
        self.tmp = str(tmp_path)
        self.names = list(names or DEFAULT_NAMES)
        self.edges = list(DEFAULT_EDGES if edges is None else edges)
        self.split = split
        self.client_port, self.bus_port, self.sync_port = {}, {}, {}
        self.monitor_port, self.metrics_port = {}, {}
        self._give_ports(self.names)
        self.procs = {}
        self.certs = os.path.join(self.tmp, "certs")
        self.curve = curve
        if curve:
            for n in self.names:
                r = subprocess.run([HERD_BIN, "keygen", n, "-d", self.certs],
                                   capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r.stderr
        self.extra_herd, self.places_extra = extra_herd, places_extra
        self.herd_name = herd_name
        self.config = os.path.join(self.tmp, "herd.cfg")
        self.write_config()
        self.env = dict(os.environ)
        self.env.pop("GOOGLE_API_KEY", None)
        if key is not None:
            self.env["GOOGLE_API_KEY"] = key
        if places_url:
            self.env["HERD_PLACES_URL"] = places_url
        else:
            #  Nothing listens on port 9 (discard): Places calls fail fast
            self.env["HERD_PLACES_URL"] = "http://127.0.0.1:9/nearbysearch/json"

    def _give_ports(self, names):
        ports = free_ports(5 * len(names))
        for i, n in enumerate(names):
            self.client_port[n], self.bus_port[n], self.sync_port[n], \
                self.monitor_port[n], self.metrics_port[n] = ports[5 * i:5 * i + 5]

    def write_config(self):
        """(Re)write herd.cfg from names, edges, ports and the extra text."""
        curve = self.curve
        lines = ["herd", f"    name = {self.herd_name}", f"    run_dir = {self.tmp}/run"]
        lines += ["    " + l for l in self.extra_herd.splitlines() if l.strip()]
        for n in self.names:
            lines += [f"node = {n}", f"    client = 127.0.0.1:{self.client_port[n]}",
                      f"    bus = tcp://127.0.0.1:{self.bus_port[n]}",
                      f"    sync = tcp://127.0.0.1:{self.sync_port[n]}",
                      f"    monitor = tcp://127.0.0.1:{self.monitor_port[n]}",
                      f"    metrics = 127.0.0.1:{self.metrics_port[n]}",
                      f"    log = {self.tmp}/logs/{n}.log",
                      f"    data = {self.tmp}/data/{n}"]
            if curve:
                lines.append(f"    cert = {self.certs}/{n}.cert")
        if curve:
            lines += ["security", "    curve = on"]
        if self.edges:
            lines.append("edges")
            lines += [f"    edge = {a} {b}" for a, b in self.edges]
        lines += ["places"]
        if "timeout_ms" not in self.places_extra:
            lines.append("    timeout_ms = 2000")
        lines += ["    " + l for l in self.places_extra.splitlines() if l.strip()]
        with open(self.config + ".new", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(self.config + ".new", self.config)       # never half-written

    def rewrite(self, names=None, edges=None, extra_herd=None):
        """Change the herd in herd.cfg (new names get free ports); nodes see it on SIGHUP."""
        if names is not None:
            self._give_ports([n for n in names if n not in self.client_port])
            self.names = list(names)
        if edges is not None:
            self.edges = list(edges)
        if extra_herd is not None:
            self.extra_herd = extra_herd
        self.write_config()

    def send_signal(self, name, sig=signal.SIGHUP):
        """Send sig to every process of node name (all its roles)."""
        for p in self.procs[name]:
            p.send_signal(sig)

    def forget_gateway_journal(self, name):
        """Remove node name's gateway journal (DATA/gateway/journal), with
        the node stopped. It holds the updates the bus has not yet
        confirmed, and sends them to the bus again at start: a test of the
        bus's own journal (damaged on purpose, counted) removes it first, so
        that what the bus loads is all there is."""
        path = os.path.join(self.tmp, "data", name, "gateway", "journal")
        if os.path.exists(path):
            os.remove(path)

    def log_path(self, name):
        return os.path.join(self.tmp, "logs", f"{name}.log")

    def log(self, name):
        try:
            with open(self.log_path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def start(self, name=None, wait=True):
        """Start one node (or all); wait until its gateway accepts clients."""
        names = [name] if name else self.names
        for n in names:
            roles = ["places", "bus", "gateway"] if self.split else [None]
            procs = []
            for role in roles:
                argv = [HERD_BIN, "node", n, "-c", self.config]
                if role:
                    argv += ["--role", role]
                procs.append(subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE))
            self.procs[n] = procs
        if wait:
            for n in names:
                self.wait_ready(n)
        return self

    def wait_ready(self, name):
        def accepts():
            for p in self.procs[name]:
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited with {p.returncode}: "
                                         f"{p.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.client_port[name]), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(accepts, 10, what=f"{name} to accept clients")
        if self.split:
            #  The gateway may accept before the other roles have started: a
            #  role that is sent SIGTERM before it blocks signals dies of it.
            #  Each logs "starting ROLE (pid N)" once its signals are blocked
            for role, p in zip(["places", "bus", "gateway"], self.procs[name]):
                line = f"starting {role} (pid {p.pid})".encode()
                wait_for(lambda: line in self.log(name), 10, what=f"{name}'s {role} to start")

    def wait_links(self, name=None):
        """Wait until every bus link of the node(s) has been logged up."""
        for n in ([name] if name else self.names):
            peers = [b for a, b in self.edges if a == n] + [a for a, b in self.edges if b == n]
            for p in peers:
                wait_for(lambda: f"bus link up {p} ".encode() in self.log(n), 10,
                         what=f"link {n}->{p}")

    def kill(self, name, sig=signal.SIGKILL):
        for p in self.procs.pop(name, []):
            p.send_signal(sig)
            p.wait(10 * SLOW)

    def stop(self, name=None):
        """SIGTERM node(s); returns {node: [exit codes]} (0 = clean, leak-free)."""
        codes = {}
        for n in ([name] if name else list(self.procs)):
            procs = self.procs.pop(n, [])
            codes[n] = []
            #  Split nodes stop gateway first, then bus, then places, so what
            #  the gateway acknowledged reaches the bus
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
                try:
                    codes[n].insert(0, p.wait(10 * SLOW))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    codes[n].insert(0, "hung")
            for p in procs:
                if p.stderr:
                    err = p.stderr.read()
                    if err.strip():
                        sys.stderr.write(f"--- {n} stderr:\n{err.decode(errors='replace')}\n")
                    p.stderr.close()
        return codes

    def port(self, name):
        return self.client_port[name]

    def herd_cmd(self, *args, timeout=30):
        """Run a `herd` subcommand against this herd's config."""
        return subprocess.run([HERD_BIN, *args, "-c", self.config], capture_output=True,
                              text=True, timeout=timeout * SLOW, env=self.env)

    def digests(self):
        """{node: 'COUNT DIGEST' or 'unreachable'} from `herd digest`."""
        out = self.herd_cmd("digest").stdout
        result = {}
        for line in out.splitlines():
            name, rest = line.split(" ", 1)
            result[name] = rest
        return result

    def converged(self, names=None):
        """The common 'COUNT DIGEST' when the named nodes all agree, else None."""
        d = self.digests()
        values = {d.get(n) for n in (names or self.names)}
        if len(values) == 1:
            value = values.pop()
            return value if value and value != "unreachable" else None
        return None

    def link(self, node, peer, state):
        r = self.herd_cmd("link", node, peer, state)
        assert r.returncode == 0, r.stderr
