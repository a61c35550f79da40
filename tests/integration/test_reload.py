"""SIGHUP reloads herd.cfg: neighbours, limits and log settings change live,
clients stay connected, and what cannot change live is refused and kept."""

import signal
import subprocess
import time

import pytest

import urllib.request

from herdlib import HERD_BIN, SLOW, Client, free_ports, iamat, wait_for


def stored(herd, client, node):
    """True once node's bus holds client's record (herd get, over sync)."""
    r = herd.herd_cmd("get", client, node)
    return r.stdout.startswith(f"{node} AT ")


def reloads(herd, name, count=1):
    """True once name has reloaded count times: every process of it (each
    role of a split node logs its own line)."""
    processes = 3 if herd.split else 1
    return herd.log(name).count(b"main reloaded configuration: ") >= count * processes


def test_node_and_edge_added_client_kept(make_herd):
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")]).start()
    herd.wait_links()
    c = Client(herd.port("Hill"))
    assert c.request(f"IAMAT kept +1+1 {time.time():.9f}").startswith(b"AT Hill ")
    #  Campbell joins the file, linked to Hill; Hill is told on SIGHUP
    herd.rewrite(names=["Hill", "Jaquez", "Campbell"],
                 edges=[("Hill", "Jaquez"), ("Hill", "Campbell")])
    herd.start("Campbell")
    herd.send_signal("Hill")
    wait_for(lambda: reloads(herd, "Hill"), 10, what="Hill to reload")
    assert b"reloaded configuration: neighbours +Campbell; nodes +Campbell" in herd.log("Hill")
    herd.wait_links("Hill")
    iamat(herd.port("Campbell"), "from-campbell", "+2+2", f"{time.time():.9f}")
    wait_for(lambda: stored(herd, "from-campbell", "Hill"), 10, what="Campbell's update at Hill")
    #  ...and on to Jaquez, through Hill
    wait_for(lambda: stored(herd, "from-campbell", "Jaquez"), 10, what="it at Jaquez")
    #  The connection opened before the reloads still answers
    herd.send_signal("Hill")
    wait_for(lambda: reloads(herd, "Hill", 2), 10, what="Hill's second reload")
    assert b"reloaded configuration: no change" in herd.log("Hill")
    assert c.request(f"IAMAT kept +3+3 {time.time():.9f}").startswith(b"AT Hill ")
    c.close()


def test_edge_removed_stops_updates(make_herd):
    herd = make_herd(names=["Hill", "Jaquez", "Smith"],
                     edges=[("Hill", "Jaquez"), ("Hill", "Smith")]).start()
    herd.wait_links()
    herd.rewrite(edges=[("Hill", "Smith")])
    herd.send_signal("Hill")
    wait_for(lambda: reloads(herd, "Hill"), 10, what="Hill to reload")
    assert b"reloaded configuration: neighbours -Jaquez" in herd.log("Hill")
    assert b"bus link to Jaquez dropped on reload" in herd.log("Hill")
    #  Jaquez (not reloaded) still has Hill in its file; Hill follows it no more
    iamat(herd.port("Jaquez"), "from-jaquez", "+1+1", f"{time.time():.9f}")
    iamat(herd.port("Smith"), "from-smith", "+1+1", f"{time.time():.9f}")
    wait_for(lambda: stored(herd, "from-smith", "Hill"), 10, what="Smith's update at Hill")
    time.sleep(0.5 * SLOW)      # a bounded look for what must not come
    assert not stored(herd, "from-jaquez", "Hill")
    #  Hill's links (metrics, readiness) no longer count the one it dropped
    def links():
        url = f"http://127.0.0.1:{herd.metrics_port['Hill']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        return 'peer="Smith"} 1' in text and 'peer="Jaquez"' not in text
    wait_for(links, 10, what="Hill's link metrics without Jaquez")


@pytest.mark.parametrize("mode", ["inproc"])
def test_max_line_lowered_live(make_herd):
    herd = make_herd(names=["Hill"], edges=[], extra_herd="max_line = 1000").start()
    old = Client(herd.port("Hill"))
    long_id = "x" * 150
    assert old.request(f"IAMAT {long_id} +1+1 {time.time():.9f}").startswith(b"AT Hill ")
    herd.rewrite(extra_herd="max_line = 100")
    herd.send_signal("Hill")
    wait_for(lambda: reloads(herd, "Hill"), 10, what="Hill to reload")
    assert b"max_line 1000 -> 100" in herd.log("Hill")
    line = f"IAMAT {long_id} +1+1 {time.time():.9f}"
    #  The same old connection now gets the over-long answer, and is closed
    old.send(line + "\n")
    assert old.read_all() == b"? " + line.encode()[:100] + b"\n"
    old.close()
    new = Client(herd.port("Hill"))
    assert new.request(f"IAMAT short +1+1 {time.time():.9f}").startswith(b"AT Hill ")
    new.close()


@pytest.mark.parametrize("mode", ["inproc"])
def test_refused_changes_keep_the_running_config(make_herd):
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")]).start()
    old_port = herd.port("Hill")
    c = Client(old_port)
    #  This node's client address cannot change live
    new_port = free_ports(1)[0]
    herd.client_port["Hill"] = new_port
    herd.rewrite(edges=[], extra_herd="max_pending = 7")
    herd.send_signal("Hill")
    wait_for(lambda: b"reload refused: " in herd.log("Hill"), 10, what="the refusal")
    log = herd.log("Hill")
    assert (f"main reload refused: node 'Hill' client 127.0.0.1:{old_port} -> "
            f"127.0.0.1:{new_port}: cannot change while the node runs; keeping the running "
            f"configuration").encode() in log, log
    assert b"reloaded configuration" not in log and b"dropped on reload" not in log
    assert c.request(f"IAMAT still +1+1 {time.time():.9f}").startswith(b"AT Hill ")
    #  A file that does not load is refused too, with its error
    with open(herd.config) as f:
        bad_line = len(f.readlines()) + 2
    with open(herd.config, "a") as f:
        f.write("node = Bad\n   client = 127.0.0.1:1\n")      # three spaces: no level
    herd.send_signal("Hill")
    wait_for(lambda: herd.log("Hill").count(b"reload refused: ") >= 2, 10, what="2nd refusal")
    assert (f"herd.cfg:{bad_line}: ".encode()
            in herd.log("Hill").split(b"reload refused: ")[2]), herd.log("Hill")
    assert c.request(f"IAMAT still +2+2 {time.time():.9f}").startswith(b"AT Hill ")
    #  The link was kept through both: an update at Jaquez still comes
    iamat(herd.port("Jaquez"), "via-jaquez", "+1+1", f"{time.time():.9f}")
    herd.client_port["Hill"] = old_port     # herd get asks Hill where it runs
    herd.write_config()
    wait_for(lambda: stored(herd, "via-jaquez", "Hill"), 10, what="Jaquez's update at Hill")
    c.close()


@pytest.mark.parametrize("mode", ["inproc"])
@pytest.mark.parametrize("split", [False, True])
def test_herd_up_forwards_sighup(make_herd, split):
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")])
    argv = [HERD_BIN, "up", "-c", herd.config] + (["--split"] if split else [])
    proc = subprocess.Popen(argv, env=herd.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        herd.wait_links()
        herd.rewrite(extra_herd="max_pending = 9")
        proc.send_signal(signal.SIGHUP)
        herd.split = split          # reloads() counts the processes of a node
        for n in herd.names:
            wait_for(lambda: reloads(herd, n), 10, what=f"{n} to reload")
            assert b"max_pending 64 -> 9" in herd.log(n)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20 * SLOW)
        err = proc.stderr.read()
        proc.stderr.close()
    assert code == 0, err


@pytest.mark.parametrize("mode", ["inproc"])
def test_sd_notify_reloading_then_ready(make_herd, tmp_path):
    """RELOADING=1 with MONOTONIC_USEC (the monotonic clock, in usec, of when
    the reload began), then READY=1 once it is done: refused or not."""
    from test_notify import Manager, notified
    manager = Manager(tmp_path, abstract=False)
    try:
        herd = notified(make_herd(names=["Hill"], edges=[]), manager, watchdog=False).start()
        wait_for(lambda: manager.seen("READY=1"), 10, what="READY=1")
        before = time.monotonic()
        herd.rewrite(extra_herd="max_pending = 5")
        herd.send_signal("Hill")
        wait_for(lambda: reloads(herd, "Hill"), 10, what="Hill to reload")
        wait_for(lambda: len([l for _, l in manager.lines if l == "READY=1"]) == 2, 10,
                 what="the second READY=1")
        with manager.lock:
            lines = [l for _, l in manager.lines]
        at = lines.index("RELOADING=1")
        assert lines[at + 1].startswith("MONOTONIC_USEC=")
        usec = int(lines[at + 1].split("=")[1])
        assert before * 1e6 <= usec <= time.monotonic() * 1e6
        assert "READY=1" in lines[at + 2:]
    finally:
        manager.close()


@pytest.mark.parametrize("mode", ["inproc"])
def test_max_line_raised_relinks_the_bus(make_herd):
    """A larger max_line also raises the largest frame a neighbour may send,
    which libzmq takes only on a new connection: the links are made again,
    and a record longer than the old cap then crosses them."""
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")],
                     extra_herd="max_line = 30000").start()
    herd.wait_links()
    herd.rewrite(extra_herd="max_line = 100000")
    for n in herd.names:
        herd.send_signal(n)
    for n in herd.names:
        wait_for(lambda: reloads(herd, n), 10, what=f"{n} to reload")
    assert b"bus link to Jaquez added on reload" in herd.log("Hill")
    wait_for(lambda: herd.log("Hill").count(b"bus link up Jaquez ") >= 2, 10,
             what="Hill's link to Jaquez made again")
    big = "b" * 90000       # over the old frame cap (64 KiB), under the new
    at = iamat(herd.port("Jaquez"), big, "+1+1", f"{time.time():.9f}")
    assert at.startswith(b"AT Jaquez ")
    #  (herd get cannot ask for it: the sync socket takes 4 KiB frames)
    wait_for(lambda: (herd.converged() or "").startswith("1 "), 10, what="the long record at Hill")
