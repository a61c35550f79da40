"""Acknowledged means kept: an AT answer to an IAMAT means the update is stored.

Each test attacks the promise at its weakest instant: SIGKILL right after the
last answer is read, the bus role stopped or killed under the gateway, the
data directory's file system full. Whatever the client saw acknowledged must
be held by the herd afterwards; what could not be stored gets no AT.
"""

import os
import signal
import subprocess
import time

import pytest

from herdlib import SLOW, Client, Herd, wait_for

POSITION = "+34.068930-118.445127"


def held(herd, name, client):
    """The AT line node name answers for client (WHATSAT; the stand-in
    answers the places part), or None when it does not know the client."""
    c = Client(herd.port(name))
    try:
        c.send(f"WHATSAT {client} 1 1\n")
        first, _ = c.read_whatsat()
    finally:
        c.close()
    return None if first.startswith(b"? ") else first


def burst(port, prefix, count, start=0):
    """Send count IAMATs for distinct clients in one write; return the AT
    lines read back (all of them, or as many as came before the node closed
    the connection)."""
    c = Client(port)
    lines = "".join(f"IAMAT {prefix}-{start + i} {POSITION} {1700000000 + start + i}\n"
                    for i in range(count))
    c.send(lines)
    answers = []
    try:
        for _ in range(count):
            answers.append(c.read_line())
    except (EOFError, ConnectionError):
        pass
    c.close()
    return answers


@pytest.mark.parametrize("size", [1, 50])
def test_acknowledged_then_killed_is_kept(make_herd, standin, size):
    """Finding 1: bursts of IAMATs, every AT read, SIGKILL at once; after a
    restart every acknowledged update is still there."""
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")],
                     places_url=standin.url)
    acked = []
    rounds = 30 if size == 1 else 5
    for r in range(rounds):
        herd.start("Hill")
        if r == 0:
            herd.start("Jaquez")
        answers = burst(herd.port("Hill"), f"k{r}", size)
        #  The instant the last answer is read: no time for anything else
        herd.kill("Hill", signal.SIGKILL)
        assert len(answers) == size and all(a.startswith(b"AT Hill ") for a in answers)
        acked += [a.split()[3].decode() for a in answers]
    herd.start("Hill")
    missing = [c for c in acked if held(herd, "Hill", c) is None]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged updates lost: {missing[:5]}"


def test_gateway_never_acks_what_the_bus_did_not_store(tmp_path, standin):
    """Finding 2 (split mode): with the bus role stopped, IAMATs get no AT;
    with it killed, their connection is closed without one; other clients
    still get answers; once the bus is back, IAMATs are acknowledged and
    kept."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], split=True, places_url=standin.url,
                extra_herd="ack_timeout_ms = 1500")
    try:
        herd.start()
        places, bus, gateway = herd.procs["Hill"]
        bus.send_signal(signal.SIGSTOP)
        stopped = Client(herd.port("Hill"))
        stopped.send("".join(f"IAMAT stopped-{i} {POSITION} {1700000000 + i}\n"
                             for i in range(13)))
        #  Meanwhile the gateway serves everyone else
        other = Client(herd.port("Hill"), timeout=2)
        assert other.request("hello") == b"? hello"
        other.close()
        #  No AT while the bus cannot store: the connection is closed after
        #  ack_timeout_ms, with nothing acknowledged
        started = time.monotonic()
        assert stopped.read_all() == b""
        assert time.monotonic() - started < 5 * SLOW
        stopped.close()
        assert b"update not stored within 1500 ms" in herd.log("Hill")

        #  Killed with updates in its queue: none of them is acknowledged
        kept = Client(herd.port("Hill"))
        kept.send("".join(f"IAMAT killed-{i} {POSITION} {1700000000 + i}\n" for i in range(13)))
        bus.send_signal(signal.SIGKILL)
        bus.wait(10)
        herd.procs["Hill"][1] = subprocess.Popen(
            [os.environ.get("HERD_BIN", herd_bin()), "node", "Hill", "-c", herd.config,
             "--role", "bus"], env=herd.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        answers = kept.read_all()
        kept.close()
        acked = [l.split()[3].decode() for l in answers.splitlines() if l.startswith(b"AT ")]
        #  Whatever was acknowledged (the bus may have stored some before it
        #  died) is held by the new bus
        def back():
            return Client(herd.port("Hill")).request(f"IAMAT after {POSITION} 1800000000")
        assert wait_for(back, 10, interval=0.1, what="an AT from the restarted bus")
        for client in acked + ["after"]:
            assert held(herd, "Hill", client), client
    finally:
        herd.stop()


def herd_bin():
    from herdlib import HERD_BIN
    return HERD_BIN


def test_full_disk_gets_no_at_and_recovers(make_herd, standin, tmp_path):
    """Finding 3 (the acknowledgement side): with the data directory's file
    system full, IAMATs get no AT and their connections are closed; once
    space is back the node acknowledges again by itself, and everything
    acknowledged survives a SIGKILL."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     extra_herd="ack_timeout_ms = 1000")
    data = os.path.join(herd.tmp, "data", "Hill")
    os.makedirs(data)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", data]).returncode:
        pytest.skip("cannot mount a tmpfs")
    try:
        herd.start()
        acked = []
        refused = 0
        #  Fill the disk: ~100-byte records, 256 kB of space
        for r in range(40):
            answers = burst(herd.port("Hill"), f"fill{r}", 100)
            acked += [a.split()[3].decode() for a in answers if a.startswith(b"AT ")]
            refused += 100 - len(answers)
            if refused:
                break
        assert refused, "the file system never filled"
        assert b"journal write failed" in herd.log("Hill")
        #  While full: no AT at all
        answers = burst(herd.port("Hill"), "full", 20)
        assert answers == []
        #  Space comes back: the node acknowledges again by itself
        subprocess.run(["mount", "-o", "remount,size=16m", data], check=True)
        def acks():
            got = burst(herd.port("Hill"), f"back{time.monotonic_ns()}", 1)
            return got and got[0].startswith(b"AT ")
        wait_for(acks, 10, interval=0.2, what="acknowledgements once space is back")
        answers = burst(herd.port("Hill"), "after", 100)
        assert len(answers) == 100
        acked += [a.split()[3].decode() for a in answers]
        assert b"journal writing again" in herd.log("Hill")
        herd.kill("Hill", signal.SIGKILL)
        herd.start("Hill")
        missing = [c for c in acked if held(herd, "Hill", c) is None]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged updates lost"
        assert b"journal damaged" not in herd.log("Hill")
    finally:
        herd.stop()
        subprocess.run(["umount", "-l", data])
