"""systemd notification: a node tells $NOTIFY_SOCKET it is ready, pings the
watchdog only while every actor turns, and says when it stops.

The test plays systemd: it binds its own AF_UNIX datagram socket (a path, or
a name in the abstract namespace: NOTIFY_SOCKET=@name), starts a real node
with NOTIFY_SOCKET and WATCHDOG_USEC=2000000 (ping every second), and reads
what arrives. WATCHDOG_PID stays unset, which the protocol allows (systemd
sets it to the main pid; a node whose pid differs must not ping).
"""

import os
import select
import signal
import socket
import threading
import time

import pytest

from herdlib import Client, PipeLog, wait_for

BOUND = 5.0         #  HERD_ALIVE_BOUND_MS
WATCHDOG_S = 2.0    #  WATCHDOG_USEC below: the node pings every 1 s


class Manager:
    """The service manager's end: every line of every datagram, with the time
    it arrived (one datagram may carry several KEY=VALUE lines)."""

    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"herd-test-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(str(tmp_path), "notify.sock")
            self.sock.bind(self.address)
        self.lines = []             #  (monotonic time, "KEY=VALUE")
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read)
        self.thread.start()

    def _read(self):
        while not self.done.is_set():
            if select.select([self.sock], [], [], 0.05)[0]:
                data = self.sock.recv(4096)
                now = time.monotonic()
                with self.lock:
                    self.lines += [(now, l) for l in data.decode().split("\n") if l]

    def seen(self, line):
        """The time line first arrived, or None."""
        with self.lock:
            return next((t for t, l in self.lines if l == line), None)

    def pings(self, since=0.0):
        with self.lock:
            return [t for t, l in self.lines if l == "WATCHDOG=1" and t >= since]

    def statuses(self):
        with self.lock:
            return [l[len("STATUS="):] for _, l in self.lines if l.startswith("STATUS=")]

    def close(self):
        self.done.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def manager_factory(tmp_path):
    made = []

    def make(abstract=False):
        made.append(Manager(tmp_path, abstract))
        return made[-1]
    yield make
    for m in made:
        m.close()


def wakeups(pid):
    """How many times the process's main thread has slept and woken."""
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def notified(herd, manager, watchdog=True):
    herd.env["NOTIFY_SOCKET"] = manager.address
    herd.env.pop("WATCHDOG_PID", None)
    if watchdog:
        herd.env["WATCHDOG_USEC"] = str(int(WATCHDOG_S * 1e6))
    return herd


@pytest.mark.parametrize("mode", ["inproc"])
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_watchdog_and_stopping(make_herd, manager_factory, abstract):
    """READY=1 comes once the node accepts clients (a connection made the
    moment it arrives succeeds), with STATUS naming the client address;
    WATCHDOG=1 about every second (half of WATCHDOG_USEC); STOPPING=1 on
    SIGTERM, and the node exits cleanly."""
    manager = manager_factory(abstract)
    herd = notified(make_herd(names=["Hill"], edges=[]), manager)
    herd.start(wait=False)
    ready = wait_for(lambda: manager.seen("READY=1"), 10, what="READY=1")
    Client(herd.port("Hill"), timeout=1).close()       #  accepts already
    assert f"serving clients on 127.0.0.1:{herd.port('Hill')}" in manager.statuses()
    wait_for(lambda: len(manager.pings(ready)) >= 4, 4 * WATCHDOG_S + 2, interval=0.1,
             what="four watchdog pings")
    pings = manager.pings(ready)
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert all(0.5 < g < 1.6 for g in gaps), gaps
    assert manager.seen("STOPPING=1") is None
    proc = herd.procs["Hill"][0]
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: manager.seen("STOPPING=1"), 10, what="STOPPING=1")
    assert proc.wait(10) == 0
    print(f"watchdog gaps: {[round(g, 2) for g in gaps]}")


@pytest.mark.parametrize("mode", ["inproc"])
def test_watchdog_pid_of_another_process_is_not_pinged(make_herd, manager_factory):
    """WATCHDOG_PID names the process the watchdog is meant for: a node that
    is not it says READY=1 but never pings."""
    manager = manager_factory()
    herd = notified(make_herd(names=["Hill"], edges=[]), manager)
    herd.env["WATCHDOG_PID"] = "1"
    herd.start()
    ready = wait_for(lambda: manager.seen("READY=1"), 10, what="READY=1")
    #  Three times the ping interval, then none may have come
    deadline = ready + 3 * WATCHDOG_S / 2
    wait_for(lambda: time.monotonic() > deadline, 5, interval=0.1, what="three intervals")
    assert manager.pings() == []


@pytest.mark.parametrize("mode", ["inproc"])
def test_a_stalled_actor_holds_back_the_watchdog(make_herd, manager_factory, tmp_path):
    """One actor of a one-process node stalls (as in test_alive: its log is a
    FIFO whose reader stops reading, so the log's writer blocks in write()).
    Within the stall bound and a margin the watchdog pings stop, while the
    main thread still turns (it says STATUS=... stalled); systemd would
    restart the node. Once the reader reads again, the pings resume."""
    manager = manager_factory()
    herd = notified(make_herd(names=["Hill"], edges=[]), manager)
    log = PipeLog(herd.log_path("Hill"))
    try:
        herd.start()
        ready = wait_for(lambda: manager.seen("READY=1"), 10, what="READY=1")
        wait_for(lambda: len(manager.pings(ready)) >= 2, 3 * WATCHDOG_S, interval=0.1,
                 what="watchdog pings")
        log.pause()
        client = Client(herd.port("Hill"))
        for i in range(100):
            assert client.request(b"hello %d" % i) == b"? hello %d" % i
        client.close()
        blocked = time.monotonic()
        #  Pings stop: the last one comes within the bound (and the main
        #  thread's second, and a margin) of the writer blocking, and none
        #  for 3 s (three intervals) after it
        def held_back():
            pings = manager.pings()
            return time.monotonic() - (pings[-1] if pings else 0) > 3 and pings[-1]
        last = wait_for(held_back, BOUND + 8, interval=0.1, what="the pings to stop")
        assert last - blocked < BOUND + 2.5, last - blocked
        assert any("stalled" in s and "log" in s for s in manager.statuses()), manager.statuses()
        #  Held back, the main thread still wakes once a second, no more:
        #  an overdue ping does not make it spin
        pid = herd.procs["Hill"][0].pid
        before, since = wakeups(pid), time.monotonic()
        wait_for(lambda: time.monotonic() - since > 2, 5, interval=0.1, what="two seconds")
        woke = wakeups(pid) - before
        assert woke < 20, f"the main thread woke {woke} times in 2 s"
        log.resume()
        resumed = time.monotonic()
        first = wait_for(lambda: (lambda p: p and p[0])(manager.pings(resumed)), 4,
                         interval=0.1, what="the pings to resume")
        assert manager.statuses()[-1] == f"serving clients on 127.0.0.1:{herd.port('Hill')}"
        print(f"last ping {last - blocked:.1f} s after the writer blocked; "
              f"first again {first - resumed:.1f} s after it could write")
    finally:
        log.resume()
        codes = herd.stop()
        log.close()
    assert codes == {"Hill": [0]}, codes


def test_unit_is_type_notify_with_a_watchdog_above_the_stall_bound():
    """The unit asks for what the node sends: Type=notify, messages from the
    main process only, and a watchdog long enough that a healthy node's
    pings (every half of it, held back only by a stall past the bound)
    never miss it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "dist", "herd@.service.in")) as f:
        service = dict(l.strip().split("=", 1) for l in f
                       if "=" in l and not l.startswith("#"))
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] in ("on-failure", "always")
    watchdog = float(service["WatchdogSec"])
    assert watchdog / 2 + BOUND + 1 < watchdog, watchdog
