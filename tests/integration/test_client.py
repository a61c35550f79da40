"""herd client on real herds: LINE arguments, stdin, --iamat, --pretty, node names,
failures (unreachable, silent, closing node) and an interactive session on a pseudo-terminal."""

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from herdlib import AT_RE, HERD_BIN, SLOW, Client, free_ports, wait_for

UCLA = "+34.068930-118.445127"


@pytest.fixture
def mode():
    """The client only sees a node's TCP side: one process mode is enough here."""
    return "inproc"


def now_str():
    return f"{time.time():.9f}"


def client(*args, stdin=subprocess.DEVNULL, input=None, timeout=30, env=None):
    """Run `herd client ARGS` with a bounded wait; stdout as bytes."""
    if input is not None:
        stdin = None
    return subprocess.run([HERD_BIN, "client", *args], stdin=stdin, input=input,
                          capture_output=True, timeout=timeout * SLOW, env=env)


def one_node(make_herd, standin=None, names=("Hill",)):
    kwargs = {"names": list(names), "edges": []}
    if standin:
        kwargs["places_url"] = standin.url
    return make_herd(**kwargs).start()


def raw(port, data, end):
    """The node's answers to data on a plain socket, read until they end with end."""
    c = Client(port)
    try:
        c.send(data)
        while not c.buffer.endswith(end):
            c._fill()
        return c.buffer
    finally:
        c.close()


def test_line_arguments_print_the_nodes_bytes(make_herd, standin):
    herd = one_node(make_herd, standin)
    port = herd.port("Hill")
    when = now_str()
    r = client(f"127.0.0.1:{port}", f"IAMAT kiwi {UCLA} {when}", "WHATSAT kiwi 10 3",
               "hello  there", "WHATSAT nobody 10 3", "WHATSAT kiwi 60 3")
    assert r.returncode == 0, r.stderr
    at_line = r.stdout.split(b"\n", 1)[0]
    m = AT_RE.match(at_line)
    assert m and m.group(1) == b"Hill" and m.group(3) == b"kiwi", at_line
    assert m.group(4) == UCLA.encode() and m.group(5) == when.encode()
    #  The same requests on a raw socket: the node stored that very AT line,
    #  and its answers are what the client printed, byte for byte
    expected = raw(port, b"WHATSAT kiwi 10 3\nhello  there\nWHATSAT nobody 10 3\n"
                         b"WHATSAT kiwi 60 3\n", b"? WHATSAT kiwi 60 3\n")
    assert expected.startswith(at_line + b"\n{") and expected.endswith(b"? WHATSAT kiwi 60 3\n")
    assert r.stdout == at_line + b"\n" + expected
    assert r.stderr == b""


def test_stdin_lines_pipelined_in_order(make_herd, standin):
    herd = one_node(make_herd, standin)
    port = herd.port("Hill")
    when = now_str()
    ids = [f"c{i}" for i in range(200)]
    lines = [f"IAMAT {i} +1.5-2.5 {when}" for i in ids]
    lines += ["WHATSAT c7 5 2", "garbage", "", "foo\r", "WHATSAT nobody 10 3"]
    #  The last line ends with end of file, not '\n': still a line
    data = ("\n".join(lines) + "\nIAMAT last +0+0 1").encode()
    r = client(f"127.0.0.1:{port}", input=data)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split(b"\n")
    for i, line in zip(ids, out):
        m = AT_RE.match(line)
        assert m and m.group(3) == i.encode(), (i, line)
    c7 = out[7]
    tail = raw(port, b"WHATSAT c7 5 2\n", b"}\n\n")
    assert tail.startswith(c7 + b"\n{") and tail.endswith(b"}\n\n")
    rest = r.stdout.split(b"\n", 200)[200]
    assert rest.startswith(tail)
    rest = rest[len(tail):].split(b"\n")
    assert rest[:4] == [b"? garbage", b"? ", b"? foo", b"? WHATSAT nobody 10 3"]
    m = AT_RE.match(rest[4])
    assert m and m.group(3) == b"last" and m.group(5) == b"1"
    assert rest[5:] == [b""]


def test_iamat_fills_position_and_now(make_herd, standin):
    herd = one_node(make_herd, standin)
    port = herd.port("Hill")
    before = time.time()
    r = client(f"127.0.0.1:{port}", "--iamat", "phone.example")
    after = time.time()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\n")
    assert len(lines) == 2 and lines[1] == b"", r.stdout
    m = AT_RE.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == b"Hill" and m.group(3) == b"phone.example"
    assert m.group(4) == UCLA.encode()
    sent = m.group(5).decode()
    assert re.fullmatch(r"\d+\.\d{9}", sent), sent
    assert before - 1 <= float(sent) <= after + 1
    diff = float(m.group(2))
    assert -3 * SLOW < diff < 3 * SLOW, diff

    #  --at, and LINEs after the IAMAT: the WHATSAT answers for that position
    r = client(f"127.0.0.1:{port}", "--iamat", "p2", "--at", "-33.8670+151.1957",
               "WHATSAT p2 5 4")
    assert r.returncode == 0, r.stderr
    first, body = r.stdout.split(b"\n", 1)
    m = AT_RE.match(first)
    assert m and m.group(3) == b"p2" and m.group(4) == b"-33.8670+151.1957"
    assert body.startswith(first + b"\n{") and body.endswith(b"}\n\n")
    assert len(json.loads(body.split(b"\n", 1)[1])["results"]) == 4

    for bad in (["--iamat", "x", "--at", "34-118"], ["--iamat", "x", "--at", "+91+0"],
                ["--iamat", "two words"], ["--timeout", "0"], ["--timeout", "soon"],
                ["--iamat"], ["--colour"]):
        r = client(f"127.0.0.1:{port}", *bad)
        assert r.returncode == 2 and b"herd client:" in r.stderr and r.stdout == b"", bad


def test_pretty_prints_whatsat_json(make_herd, standin):
    herd = one_node(make_herd, standin)
    port = herd.port("Hill")
    r = client(f"127.0.0.1:{port}", "--pretty", "--iamat", "kiwi", "WHATSAT kiwi 10 5",
               "nonsense")
    assert r.returncode == 0, r.stderr
    at_line, rest = r.stdout.split(b"\n", 1)
    assert AT_RE.match(at_line)
    assert rest.startswith(at_line + b"\n{\n")
    body, after = rest[len(at_line) + 1:].split(b"\n\n", 1)
    assert after == b"? nonsense\n"
    document = json.loads(body)
    assert document["status"] == "OK" and len(document["results"]) == 5
    #  Google's layout: 3-space indents, "key" : value
    text = body.decode()
    assert '\n   "results" : [\n      {\n' in text and "\t" not in text
    assert json.loads(raw(port, b"WHATSAT kiwi 10 5\n", b"}\n\n").split(b"\n", 1)[1]) == document


def test_node_name_from_config(make_herd):
    herd = one_node(make_herd, names=("Hill", "Jaquez"))
    r = client("Jaquez", "-c", herd.config, "--iamat", "kiwi")
    assert r.returncode == 0, r.stderr
    m = AT_RE.match(r.stdout.rstrip(b"\n"))
    assert m and m.group(1) == b"Jaquez", r.stdout
    r = client("Nobody", "-c", herd.config, "x")
    assert r.returncode == 1 and b"Nobody" in r.stderr and herd.config.encode() in r.stderr
    r = client("Hill", "-c", herd.config + ".missing", "x")
    assert r.returncode == 1 and b".missing" in r.stderr


def test_unreachable_exits_1_with_a_message():
    port = free_ports(1)[0]
    r = client(f"127.0.0.1:{port}", "hello")
    assert r.returncode == 1 and r.stdout == b""
    assert f"cannot connect to 127.0.0.1:{port}".encode() in r.stderr, r.stderr
    r = client("no-such-host.invalid:12000", "hello")
    assert r.returncode == 1 and b"cannot connect to no-such-host.invalid:12000" in r.stderr
    r = client("127.0.0.1:99999", "hello")
    assert r.returncode == 2 and b"HOST:PORT" in r.stderr


class FakeNode:
    """A TCP server that reads one request line, sends reply, then closes the
    connection (close=True) or waits for the client to close it."""

    def __init__(self, reply=b"", close=False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reply, self.close_after = reply, close
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(10 * SLOW)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10 * SLOW)
            try:
                while b"\n" not in self.received:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    self.received += chunk
                conn.sendall(self.reply)
                if not self.close_after:
                    conn.recv(4096)     #  until the client is done and closes
            except OSError:
                pass

    def close(self):
        self.listener.close()
        self.thread.join(10 * SLOW)


def test_timeout_and_early_close_exit_1():
    silent = FakeNode()
    try:
        start = time.monotonic()
        r = client(f"127.0.0.1:{silent.port}", "--timeout", "300", "WHATSAT kiwi 10 5")
        took = time.monotonic() - start
        assert r.returncode == 1
        assert b"no answer from" in r.stderr and b"300 ms" in r.stderr, r.stderr
        assert b"WHATSAT kiwi 10 5" in r.stderr
        assert 0.25 < took < 5 * SLOW
    finally:
        silent.close()
    half = FakeNode(b"AT Fake +0.000000001 kiwi +0+0 1\n{\n", close=True)
    try:
        r = client(f"127.0.0.1:{half.port}", "WHATSAT kiwi 10 5")
        assert r.returncode == 1
        assert b"closed the connection before answering 'WHATSAT kiwi 10 5'" in r.stderr
    finally:
        half.close()


AT_FAKE = b"AT Fake +0.000000001 kiwi +0+0 1\n"
COMPACT = (b'{"html_attributions":[],"results":[{"name":"a \\"[x]\\", b{",'
           b'"types":["bar","food"],"geometry":{"location":{"lat":34.0714384802915,'
           b'"lng":-118.4}},"long":["aaaaaaaaaaaa","bbbbbbbbbbbb","cccccccccccc",'
           b'"dddddddddddd","eeeeeeeeeeee"],"e":{}}],"status":"OK"}')
PRETTY = b"""{
   "html_attributions" : [],
   "results" : [
      {
         "name" : "a \\"[x]\\", b{",
         "types" : [ "bar", "food" ],
         "geometry" : {
            "location" : {
               "lat" : 34.0714384802915,
               "lng" : -118.4
            }
         },
         "long" : [
            "aaaaaaaaaaaa",
            "bbbbbbbbbbbb",
            "cccccccccccc",
            "dddddddddddd",
            "eeeeeeeeeeee"
         ],
         "e" : {}
      }
   ],
   "status" : "OK"
}"""


@pytest.mark.parametrize("body,shown", [(COMPACT, PRETTY), (b'{"results" : [1,', b'{"results" : [1,')])
def test_pretty_layout_of_compact_json(body, shown):
    """Only white space changes (strings and numbers as sent); invalid JSON is shown as sent."""
    fake = FakeNode(AT_FAKE + body + b"\n\n")
    try:
        r = client(f"127.0.0.1:{fake.port}", "--pretty", "WHATSAT kiwi 10 5")
        assert r.returncode == 0, r.stderr
        assert r.stdout == AT_FAKE + shown + b"\n\n"
        assert fake.received == b"WHATSAT kiwi 10 5\n"
    finally:
        fake.close()


def links_libedit():
    try:
        out = subprocess.run(["ldd", HERD_BIN], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "libedit" in out


class Terminal:
    """herd client on a pseudo-terminal: type keys, read the screen."""

    def __init__(self, args, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(HERD_BIN, [HERD_BIN, "client", *args], env)
            finally:
                os._exit(127)
        self.screen = b""
        self.seen = 0           #  end of the last match

    def type(self, text):
        os.write(self.fd, text.encode())

    def read_until(self, pattern, timeout=10):
        """Read the screen until pattern (bytes regex) shows after the last match; what
        showed up to the end of this match."""
        deadline = time.monotonic() + timeout * SLOW
        while not (m := re.compile(pattern).search(self.screen, self.seen)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen: {self.screen!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed waiting for {pattern!r}; "
                                         f"screen: {self.screen!r}")
                self.screen += chunk
        shown, self.seen = self.screen[self.seen:m.end()], m.end()
        return shown

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            #  Keep the pty drained so the child never blocks on output
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"client did not exit; screen: {self.screen!r}")

    def close(self):
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_interactive_session_on_a_terminal(make_herd, standin, tmp_path):
    herd = one_node(make_herd, standin)
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm")
    term = Terminal(["Hill", "-c", herd.config, "--pretty"], env)
    try:
        term.read_until(rb"connected to Hill \(127\.0\.0\.1:\d+\)")
        term.read_until(rb"Hill> ")
        when = now_str()
        term.type(f"IAMAT kiwi {UCLA} {when}\r")
        shown = term.read_until(rb"Hill> ")
        assert re.search(rb"AT Hill [+-]\d+\.\d{9} kiwi " + re.escape(UCLA.encode()) + b" "
                         + when.encode(), shown), shown
        term.type("WHATSAT kiwi 10 2\r")
        shown = term.read_until(rb"\}\r?\n\r?\nHill> ")
        assert b'   "status" : "OK"' in shown
        #  A blank line is not sent; garbage gets its '? ' answer
        term.type("\r")
        term.read_until(rb"Hill> ")
        term.type("hello\r")
        assert b"? hello" in term.read_until(rb"Hill> ")
        if links_libedit():
            #  History: the up arrow brings back the last line
            term.type("\x1b[A\r")
            assert b"? hello" in term.read_until(rb"Hill> ")
        #  Ctrl-D. libedit flushes input typed before it sets the terminal
        #  up for a line, so a key can be lost right after a prompt: type it
        #  again if the client is still there
        code = None
        for attempt in range(5):
            if attempt:
                #  Re-synchronise on a fresh prompt (an empty line is not
                #  sent) before typing Ctrl-D again
                term.type("\r")
                try:
                    term.read_until(rb"Hill> ", timeout=2)
                except AssertionError:
                    pass
            term.type("\x04")
            try:
                code = term.wait(timeout=2)
                break
            except AssertionError:
                continue
        assert code == 0, term.screen[-400:]
    finally:
        term.close()
    if links_libedit():
        #  libedit's format writes a space as \\040
        history = (tmp_path / ".herd_history").read_text(errors="replace").replace("\\040", " ")
        assert "WHATSAT kiwi 10 2" in history


def test_interactive_session_ends_when_the_node_goes(make_herd, tmp_path):
    herd = one_node(make_herd)
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm")
    term = Terminal([f"127.0.0.1:{herd.port('Hill')}"], env)
    try:
        term.read_until(rb"127\.0\.0\.1:\d+> ")
        assert herd.stop("Hill") == {"Hill": [0]}
        term.type("hello\r")
        term.read_until(rb"closed the connection")
        assert term.wait() == 1
    finally:
        term.close()


def test_interactive_flag_without_a_terminal(make_herd):
    herd = one_node(make_herd)
    r = client(f"127.0.0.1:{herd.port('Hill')}", "-i", input=b"hello\n\nbye\n")
    assert r.returncode == 0, r.stderr
    #  Blank lines are skipped at a prompt; each answer as received
    assert b"? hello\n" in r.stdout and b"? bye\n" in r.stdout and b"? \n" not in r.stdout
