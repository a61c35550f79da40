"""Liveness: every actor's loop proves it turns; a node logs and shows one that stops.

A role whose loop has not turned (in a split node: whose STATS have not
reached the monitor) for more than the bound, 5 s, is stalled: the node's log
says "ROLE stalled: ..." once, its metrics show herd_actor_stalled 1, and
when it turns again the log says "ROLE turning again after N ms".
"""

import json
import signal
import subprocess
import time
import urllib.request

import pytest

from herdlib import HERD_BIN, Client, PipeLog, wait_for

BOUND = 5.0         #  HERD_ALIVE_BOUND_MS
ROLES = {"gateway", "bus", "places", "log", "monitor"}


def alive(herd, name):
    """{role: (age in seconds, stalled)} from the node's metrics page."""
    url = f"http://127.0.0.1:{herd.metrics_port[name]}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    ages, stalled = {}, {}
    for line in text.splitlines():
        for metric, into in (("herd_actor_last_turn_age_seconds", ages),
                             ("herd_actor_stalled", stalled)):
            prefix = f'{metric}{{node="{name}",role="'
            if line.startswith(prefix):
                role, value = line[len(prefix):].split('"} ')
                into[role] = float(value)
    return {role: (ages[role], stalled[role] == 1) for role in ages}


def test_an_idle_node_never_stalls(make_herd):
    """Every loop of an idle node wakes at least once a second: across more
    than the bound, each role's last turn stays young and none is stalled."""
    herd = make_herd(names=["Hill"], edges=[]).start()
    wait_for(lambda: set(alive(herd, "Hill")) == ROLES, 10, what="every role in metrics")
    oldest = {}
    deadline = time.monotonic() + BOUND + 1.5
    while time.monotonic() < deadline:
        for role, (age, stalled) in alive(herd, "Hill").items():
            assert not stalled, (role, age)
            oldest[role] = max(age, oldest.get(role, 0))
        time.sleep(0.1)
    assert set(oldest) == ROLES
    assert max(oldest.values()) < BOUND / 2, oldest
    print("oldest last turn seen:", oldest)
    assert b" stalled" not in herd.log("Hill")


def test_monitor_stats_carry_liveness(make_herd):
    zmq = pytest.importorskip("zmq")
    herd = make_herd(names=["Hill"], edges=[]).start()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"STATS")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{herd.monitor_port['Hill']}")
    try:
        def stats_with_every_role():
            if not sub.poll(500):
                return None
            _, _, body = sub.recv_multipart()
            snapshot = json.loads(body)
            return set(snapshot.get("alive", {})) == ROLES and snapshot
        snapshot = wait_for(stats_with_every_role, 10, interval=0,
                            what="STATS with every role alive")
        for role, entry in snapshot["alive"].items():
            assert entry["stalled"] is False and 0 <= entry["last_turn_age_ms"] < 2500, (role, entry)
    finally:
        sub.close()
        ctx.term()


@pytest.mark.parametrize("mode", ["split"])
@pytest.mark.parametrize("stopped", ["gateway", "places"])
def test_a_stopped_process_shows_stalled_then_turning(make_herd, stopped):
    """SIGSTOP a split node's gateway (or places) process: within the bound
    and a margin the node's metrics show that role stalled, and only that
    one (each role reports to the monitor itself, none relays another's),
    the log says so once; after SIGCONT the role turns again and the log
    says that too."""
    herd = make_herd(names=["Hill"], edges=[]).start()
    proc = herd.procs["Hill"][["places", "bus", "gateway"].index(stopped)]
    wait_for(lambda: set(alive(herd, "Hill")) == ROLES, 10, what="every role in metrics")
    stalled_roles = {stopped}
    proc.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    seen = []               #  the readings, for the message if it times out

    def stalled_now():
        reading = alive(herd, "Hill")
        seen.append((round(time.monotonic() - started, 2), reading))
        return all(reading.get(r, (0, False))[1] for r in stalled_roles) and reading
    try:
        try:
            shown = wait_for(stalled_now, BOUND + 3, interval=0.1, what=f"{stopped} stalled")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; last readings (s after SIGSTOP, {{role: (age, "
                                 f"stalled)}}): {seen[-3:]}") from None
        took = time.monotonic() - started
        #  Not before the bound: the last STATS came at most a second or two
        #  before the stop
        assert took > BOUND - 2.5, took
        assert {r for r, (_, s) in shown.items() if s} == stalled_roles, shown
        line = f"Hill main {stopped} stalled: no STATS reached the monitor for ".encode()
        wait_for(lambda: line in herd.log("Hill"), 3, what="the stall logged")
        #  herd monitor shows the node stalled, and is not content
        r = subprocess.run([HERD_BIN, "monitor", "-c", herd.config, "--once"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "\nHill         STALL" in r.stdout, r.stdout
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_for(lambda: (lambda a: a and not any(s for _, s in a.values()))(alive(herd, "Hill")),
             5, interval=0.1, what=f"{stopped} turning again")
    line = f"Hill main {stopped} turning again after ".encode()
    wait_for(lambda: line in herd.log("Hill"), 3, what="the recovery logged")
    log = herd.log("Hill")
    assert log.count(b" stalled: ") == len(stalled_roles), log
    print(b"".join(l + b"\n" for l in log.splitlines() if b" main " in l).decode())
    print(f"{stopped} shown stalled {took:.1f} s after SIGSTOP")


@pytest.mark.parametrize("mode", ["inproc"])
def test_a_blocked_log_writer_shows_stalled_in_one_process(make_herd, tmp_path):
    """One actor of a one-process node stalls for real: its log is a FIFO
    whose reader stops reading (a hung disk), so the log's writer thread
    blocks in write() while the gateway, bus and places keep turning. The
    metrics show the log role stalled and only it; once the reader reads
    again the log holds both the stall and the recovery."""
    herd = make_herd(names=["Hill"], edges=[])
    log = PipeLog(herd.log_path("Hill"))
    try:
        herd.start()
        wait_for(lambda: set(alive(herd, "Hill")) == ROLES, 10, what="every role in metrics")
        log.pause()
        #  Client lines are logged: enough of them fill the pipe
        client = Client(herd.port("Hill"))
        for i in range(100):
            assert client.request(b"hello %d" % i) == b"? hello %d" % i
        client.close()
        shown = wait_for(lambda: (lambda a: a["log"][1] and a)(alive(herd, "Hill")), BOUND + 5,
                         interval=0.1, what="the log writer stalled")
        assert {r for r, (_, s) in shown.items() if s} == {"log"}, shown
        #  The main thread looks once a second: past the bound by 2 s, it
        #  has seen the stall (its line waits in the log's buffer)
        wait_for(lambda: alive(herd, "Hill")["log"][0] > BOUND + 2, 5, interval=0.1,
                 what="the stall seen by the main thread")
        log.resume()
        wait_for(lambda: not alive(herd, "Hill")["log"][1], 5, interval=0.1,
                 what="the log writer turning again")
        wait_for(lambda: b" Hill main log turning again after " in log.text, 5,
                 what="the recovery logged")
        assert b" Hill main log stalled: no loop turn for " in log.text
        assert log.text.count(b" stalled: ") == 1
    finally:
        log.resume()
        codes = herd.stop()         #  the last lines still drain
        log.close()
    assert codes == {"Hill": [0]}, codes
