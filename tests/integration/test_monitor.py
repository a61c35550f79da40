"""Watching a herd: monitor endpoints, herd monitor, herd graph, Prometheus metrics."""

import json
import os
import pty
import select
import signal
import subprocess
import time
import urllib.request

import pytest

from herdlib import HERD_BIN, SLOW, iamat, wait_for, whatsat


def monitor(herd, *args):
    return subprocess.run([HERD_BIN, "monitor", "-c", herd.config, *args], capture_output=True,
                          text=True, timeout=30 * SLOW)


def test_monitor_once_shows_a_healthy_herd(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    iamat(herd.port("Hill"), "watched", "+1+1", 5)
    wait_for(lambda: herd.converged(), 5, what="convergence")
    r = wait_for(lambda: (lambda r: r.returncode == 0 and r)(monitor(herd, "--once")), 10,
                 what="a healthy snapshot")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["NODE", "STATE", "CLIENTS", "DIGEST"]
    for n in herd.names:
        row = next(l for l in lines if l.startswith(n + " "))
        assert row.split()[1] == "up" and row.split()[2] == "1", row
    assert "edges: Hill-Jaquez:up" in r.stdout
    assert "digests: all agree" in r.stdout


def test_monitor_shows_a_stopped_node(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    herd.kill("Smith")
    def smith_down():
        r = monitor(herd, "--once", "--json")
        report = json.loads(r.stdout)
        edges = {(e["a"], e["b"]): e["state"] for e in report["edges"]}
        smith_edges = [s for (a, b), s in edges.items() if "Smith" in (a, b)]
        ok = (r.returncode == 1 and report["nodes"]["Smith"] is None
              and all(s != "up" for s in smith_edges)
              and edges.get(("Hill", "Jaquez")) == "up")
        return ok and report
    report = wait_for(smith_down, 15, interval=0.2, what="Smith shown down")
    assert report["nodes"]["Hill"]["bus"]["links"]["Smith"] == "down"
    r = monitor(herd, "--once")
    assert [l for l in r.stdout.splitlines() if l.startswith("Smith ")][0].split()[1] == "DOWN"


def test_graph_is_dot_with_live_state(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    r = wait_for(lambda: (lambda r: r.returncode == 0 and r)(
        subprocess.run([HERD_BIN, "graph", "-c", herd.config], capture_output=True, text=True,
                       timeout=30)), 10, what="a healthy graph")
    assert r.stdout.startswith("graph herd {")
    assert '"Hill" -- "Jaquez" [label="up", color=green];' in r.stdout
    assert r.stdout.count(" -- ") == len(herd.edges)


def test_prometheus_metrics(make_herd, standin):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")],
                     places_url=standin.url).start()
    herd.wait_links()
    for i in range(3):
        iamat(herd.port("Hill"), f"metric{i}", "+1+1", 5)
    url = f"http://127.0.0.1:{herd.metrics_port['Smith']}/metrics"

    def scraped():
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        return 'herd_bus_clients{node="Smith"} 3\n' in text and text
    text = wait_for(scraped, 10, what="metrics with 3 clients")
    assert 'herd_bus_link_up{node="Smith",peer="Hill"} 1\n' in text
    assert 'herd_bus_applied_total{node="Smith"} 3\n' in text
    first, _ = whatsat(herd.port("Smith"), "metric0", 10, 2)
    assert first.startswith(b"AT Hill ")
    #  The gateway's and places' counters come along
    text = wait_for(lambda: (lambda t: 'herd_places_answered_ok_total{node="Smith"} 1\n' in t
                             and t)(urllib.request.urlopen(url, timeout=5).read().decode()),
                    10, what="places counters")
    assert 'herd_gateway_whatsat_total{node="Smith"} 1\n' in text
    assert 'herd_gateway_iamat_total{node="Smith"} 0\n' in text
    #  Latencies as histograms in seconds, not percentiles in ms
    assert "# TYPE herd_places_latency_seconds histogram\n" in text
    assert "# TYPE herd_gateway_whatsat_seconds histogram\n" in text
    assert "_p99_ms" not in text and "_per_s" not in text


def test_monitor_endpoint_speaks_to_any_zeromq_tool(make_herd):
    zmq = pytest.importorskip("zmq")
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")]).start()
    herd.wait_links()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{herd.monitor_port['Hill']}")
    try:
        #  A STATS snapshot comes within the second
        assert sub.poll(3000 * SLOW)
        kinds = set()
        deadline = time.monotonic() + 3 * SLOW
        while "STATS" not in kinds and time.monotonic() < deadline:
            if sub.poll(500):
                kind, node, body = sub.recv_multipart()
                assert node == b"Hill"
                json.loads(body)
                kinds.add(kind.decode())
        assert "STATS" in kinds
        #  Smith restarting shows as link events
        herd.kill("Smith")
        herd.start("Smith")
        events = []
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline and not {"link down", "link up"} <= set(events):
            if sub.poll(500):
                kind, node, body = sub.recv_multipart()
                if kind == b"EVENT":
                    event = json.loads(body)
                    if event.get("peer") == "Smith":
                        events.append(event["event"])
        assert "link down" in events and "link up" in events, events
    finally:
        sub.close()
        ctx.term()


def test_live_monitor_refreshes_in_a_terminal(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HERD_BIN, [HERD_BIN, "monitor", "-c", herd.config])
    screen = b""
    try:
        deadline = time.monotonic() + 10 * SLOW
        while screen.count(b"\033[H\033[2J") < 2 and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGINT)
        os.waitpid(pid, 0)
        os.close(fd)
    assert screen.count(b"\033[H\033[2J") >= 2, screen[-500:]
    assert b"Hill" in screen and b"refreshing every second" in screen
