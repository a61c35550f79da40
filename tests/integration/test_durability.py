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

from herdlib import HERD_BIN, SLOW, Client, Herd, wait_for

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


def held_all(herd, name, clients):
    """The clients of the list that node name holds: WHATSATs pipelined on
    one connection (the herd's Places cache answers all but the first)."""
    c = Client(herd.port(name))
    try:
        c.send("".join(f"WHATSAT {client} 1 1\n" for client in clients))
        found = set()
        for client in clients:
            first, _ = c.read_whatsat()
            if not first.startswith(b"? "):
                found.add(first.split()[3].decode())
    finally:
        c.close()
    return found


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
                     places_url=standin.url, places_extra="cache_ttl_ms = 60000")
    acked = []
    rounds = 20 if size == 1 else 5
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
    found = held_all(herd, "Hill", acked)
    missing = [c for c in acked if c not in found]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged updates lost: {missing[:5]}"


def test_gateway_never_acks_what_the_bus_did_not_store(tmp_path, standin):
    """Finding 2 (split mode, fsync = always, so the gateway keeps no
    journal of its own): with the bus role stopped, IAMATs get no AT; with
    it killed, their connection is closed without one; other clients still
    get answers; once the bus is back, IAMATs are acknowledged and kept."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], split=True, places_url=standin.url,
                extra_herd="ack_timeout_ms = 1500\nfsync = always")
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
        wait_for(lambda: b"update not stored within 1500 ms" in herd.log("Hill"), 5,
                 what="the log to say why")

        #  Killed with updates in its queue (stopped first, so it has taken
        #  none of them): an update is acknowledged only if the new bus got
        #  it (ZeroMQ may hand it over when it connects); otherwise the
        #  connection is closed without an AT
        bus.send_signal(signal.SIGSTOP)
        kept = Client(herd.port("Hill"))
        kept.send("".join(f"IAMAT killed-{i} {POSITION} {1700000000 + i}\n" for i in range(13)))
        wait_for(lambda: b"in IAMAT killed-12 " in herd.log("Hill"), 5,
                 what="the gateway to take the updates")
        bus.send_signal(signal.SIGKILL)
        bus.wait(10)
        herd.procs["Hill"][1] = subprocess.Popen(
            [HERD_BIN, "node", "Hill", "-c", herd.config, "--role", "bus"], env=herd.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        answers = []
        try:
            while len(answers) < 13:
                answers.append(kept.read_line())
        except EOFError:
            pass
        kept.close()
        assert all(a.startswith(b"AT ") for a in answers)
        acked = [a.split()[3].decode() for a in answers]

        #  The new bus stores what comes now, and the gateway acknowledges it
        def back():
            c = Client(herd.port("Hill"))
            try:
                return c.request(f"IAMAT after {POSITION} {time.time()}").startswith(b"AT ")
            except (EOFError, ConnectionError):
                return False
            finally:
                c.close()
        wait_for(back, 10, interval=0.1, what="an AT from the restarted bus")
        assert held(herd, "Hill", "after")
        assert held_all(herd, "Hill", acked) == set(acked)
    finally:
        herd.stop()


def mount_tmpfs(path, size):
    """Mount a tmpfs of size on path (made first), or skip the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    os.makedirs(path)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path]).returncode:
        pytest.skip("cannot mount a tmpfs")


def restart_role(herd, name, role):
    """Start role (bus or gateway) of a split node again, as herd.start does."""
    index = ["places", "bus", "gateway"].index(role)
    herd.procs[name][index] = subprocess.Popen(
        [HERD_BIN, "node", name, "-c", herd.config, "--role", role], env=herd.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_gateway_keeps_what_it_acks_while_the_bus_is_stopped_then_killed(tmp_path, standin):
    """The gateway's own journal (fsync = everysec, the default), split
    mode: with the bus role stopped, IAMATs are still acknowledged, since
    the gateway's journal holds them; the bus is then killed without ever
    having read them, and a new bus gets them from the gateway with no
    other traffic to prompt it."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], split=True, places_url=standin.url)
    try:
        herd.start()
        places, bus, gateway = herd.procs["Hill"]
        bus.send_signal(signal.SIGSTOP)
        answers = burst(herd.port("Hill"), "kept", 13)
        assert len(answers) == 13 and all(a.startswith(b"AT Hill ") for a in answers)
        #  Killed with the updates unread in its queue
        bus.send_signal(signal.SIGKILL)
        bus.wait(10)
        restart_role(herd, "Hill", "bus")
        acked = {a.split()[3].decode() for a in answers}
        wait_for(lambda: held_all(herd, "Hill", acked) == acked, 15, interval=0.3,
                 what="the new bus to hold every update the gateway acknowledged")
    finally:
        herd.stop()


def test_after_a_busy_turn_answers_wait_for_the_bus(tmp_path, standin):
    """The gateway's journal takes a turn only after a small one (32
    updates or fewer): after a busy turn, updates are acknowledged only
    once the bus stored them, and a kept answer never overtakes one that
    waits. Split mode, with the bus stopped, so that nothing the bus would
    store can come: 40 IAMATs in one write are kept and answered; the next
    IAMAT (after a busy turn) and one from another client after it wait;
    once the bus runs again both are answered, and a SIGKILL of the whole
    node loses none of them."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], split=True, places_url=standin.url,
                places_extra="cache_ttl_ms = 60000")
    try:
        herd.start()
        bus = herd.procs["Hill"][1]
        bus.send_signal(signal.SIGSTOP)
        busy = Client(herd.port("Hill"))
        busy.send("".join(f"IAMAT busy-{i} {POSITION} {1700000000 + i}\n" for i in range(40)))
        answers = [busy.read_line() for _ in range(40)]
        assert all(a.startswith(b"AT Hill ") for a in answers)
        busy.send(f"IAMAT after-busy {POSITION} 1700000100\n")
        wait_for(lambda: b"in IAMAT after-busy " in herd.log("Hill"), 5,
                 what="the gateway to take the IAMAT")
        other = Client(herd.port("Hill"))
        other.send(f"IAMAT behind {POSITION} 1700000200\n")
        wait_for(lambda: b"in IAMAT behind " in herd.log("Hill"), 5,
                 what="the gateway to take the second IAMAT")
        for c in (busy, other):
            c.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                c.read_line()
            c.sock.settimeout(10)
        bus.send_signal(signal.SIGCONT)
        assert busy.read_line().startswith(b"AT Hill ")
        assert other.read_line().startswith(b"AT Hill ")
        busy.close()
        other.close()
        herd.kill("Hill")                       #  every role, SIGKILL
        herd.start()
        acked = {f"busy-{i}" for i in range(40)} | {"after-busy", "behind"}
        assert held_all(herd, "Hill", sorted(acked)) == acked
    finally:
        herd.stop()


@pytest.mark.parametrize("split", [False, True], ids=["inproc", "split"])
def test_node_killed_while_only_the_gateway_holds_acks_keeps_them(tmp_path, standin, split):
    """The worst instant for the gateway's journal: updates acknowledged
    that only it holds, then the whole node SIGKILLed. In split mode the bus
    is stopped first, so it surely never read them; in one process the
    kill comes the instant the last AT is read. After a restart the node
    holds every one."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], split=split, places_url=standin.url,
                places_extra="cache_ttl_ms = 60000")
    acked = set()
    try:
        for r in range(3 if split else 10):
            herd.start()
            if split:
                herd.procs["Hill"][1].send_signal(signal.SIGSTOP)
            answers = burst(herd.port("Hill"), f"only{r}", 20)
            herd.kill("Hill")                       #  every role, SIGKILL
            assert len(answers) == 20 and all(a.startswith(b"AT Hill ") for a in answers)
            acked |= {a.split()[3].decode() for a in answers}
        herd.start()
        wait_for(lambda: held_all(herd, "Hill", sorted(acked)) == acked, 15, interval=0.3,
                 what="every acknowledged update after the restart")
        assert b"sent to the bus again" in herd.log("Hill")
    finally:
        herd.stop()


def test_full_gateway_journal_waits_for_the_bus_and_recovers(tmp_path, standin):
    """The gateway's journal on a full file system, the bus's journal not:
    answers wait for the bus's STORED instead (still acknowledged, still
    kept), the log says so, and once space is back the gateway's journal
    writes again by itself."""
    herd = Herd(tmp_path, names=["Hill"], edges=[], places_url=standin.url,
                places_extra="cache_ttl_ms = 60000")
    kept = os.path.join(herd.tmp, "data", "Hill", "gateway")
    mount_tmpfs(kept, "64k")
    try:
        herd.start()
        acked = []
        for r in range(20):
            answers = burst(herd.port("Hill"), f"fill{r}", 100)
            assert len(answers) == 100 and all(a.startswith(b"AT ") for a in answers)
            acked += [a.split()[3].decode() for a in answers]
        wait_for(lambda: b"gateway journal write failed" in herd.log("Hill"), 5,
                 what="the log to say the gateway's journal failed")
        subprocess.run(["mount", "-o", "remount,size=16m", kept], check=True)
        def writing():
            burst(herd.port("Hill"), f"back{time.monotonic_ns()}", 1)
            return b"gateway journal writing again" in herd.log("Hill")
        wait_for(writing, 10, interval=0.2, what="the gateway's journal to write again")
        herd.kill("Hill", signal.SIGKILL)
        herd.start("Hill")
        found = held_all(herd, "Hill", acked)
        missing = [c for c in acked if c not in found]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged updates lost"
    finally:
        herd.stop()
        subprocess.run(["umount", "-l", kept])


def test_full_disk_gets_no_at_and_recovers(make_herd, standin, tmp_path):
    """Finding 3 (the acknowledgement side): with the data directory's file
    system full, IAMATs get no AT and their connections are closed; once
    space is back the node acknowledges again by itself, and everything
    acknowledged survives a SIGKILL."""
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     extra_herd="ack_timeout_ms = 1000", places_extra="cache_ttl_ms = 60000")
    data = os.path.join(herd.tmp, "data", "Hill")
    mount_tmpfs(data, "256k")
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
        wait_for(lambda: b"journal write failed" in herd.log("Hill"), 5, what="the log to say so")
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
        wait_for(lambda: b"journal writing again" in herd.log("Hill"), 5, what="the log to say so")
        herd.kill("Hill", signal.SIGKILL)
        herd.start("Hill")
        found = held_all(herd, "Hill", acked)
        missing = [c for c in acked if c not in found]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged updates lost"
        assert b"journal damaged" not in herd.log("Hill")
    finally:
        herd.stop()
        subprocess.run(["umount", "-l", data])
