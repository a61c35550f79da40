"""The journal on a bad day: a damaged record, a full disk, the longest line."""

import os
import re
import signal
import struct
import subprocess

import pytest

from herdlib import HERD_BIN, Client, Herd, wait_for, whatsat


def send_updates(port, clients, when, position="+10-20"):
    """IAMAT each client, pipelined on one connection; returns the clients
    whose AT reply arrived (every one, or the test fails)."""
    c = Client(port, timeout=60)
    batch = 250
    for i in range(0, len(clients), batch):
        chunk = clients[i:i + batch]
        c.send("".join(f"IAMAT {name} {position} {when}\n" for name in chunk))
        for _ in chunk:
            assert c.read_line().startswith(b"AT ")
    c.close()
    return list(clients)


def count(herd, name):
    """The client count `herd digest` reports for a node."""
    return int(herd.digests()[name].split(" ", 1)[0])


def restart_log(herd, name, kill=True):
    """Kill -9 (or stop) and restart a node; returns the offset in its log
    where the new run starts."""
    if kill:
        herd.kill(name, signal.SIGKILL)
    else:
        herd.stop(name)
    mark = len(herd.log(name))
    herd.start(name)
    return mark


def test_flipped_byte_skips_one_record(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    send_updates(herd.port("Hill"), [f"flip{i}" for i in range(1000)], "5")
    herd.stop("Hill")
    herd.forget_gateway_journal("Hill")
    journal = os.path.join(herd.tmp, "data", "Hill", "journal")
    #  One byte of record 10 (its client id) flipped on the disk
    with open(journal, "r+b") as f:
        data = f.read()
        at = data.index(b" flip10 ")
        f.seek(at + 3)
        f.write(b"X")
    mark = len(herd.log("Hill"))
    herd.start("Hill")
    #  The 999 records around it load: the damaged one alone is lost
    assert count(herd, "Hill") == 999
    for name in ("flip0", "flip9", "flip11", "flip999"):
        first, _ = whatsat(herd.port("Hill"), name, 1, 1)
        assert first.endswith(f" {name} +10-20 5".encode()), first
    log = herd.log("Hill")[mark:]
    skipped = re.search(rb"journal damaged: 1 damaged record \((\d+) bytes\) skipped, "
                        rb"999 good records kept \(checksum mismatch", log)
    assert skipped, log
    assert 40 < int(skipped.group(1)) < 80
    #  What comes after is stored after the damage, and loads too
    send_updates(herd.port("Hill"), ["after"], "6")
    mark = restart_log(herd, "Hill")
    assert count(herd, "Hill") == 1000
    assert b"skipped" in herd.log("Hill")[mark:]


def test_v2_journal_is_converted(make_herd):
    from test_catchup import record_hash
    herd = make_herd(names=["Hill"], edges=[])
    #  A journal as a node before HERDJ003 wrote it: no record marks
    lines = [f"AT Hill +0.000000000 two{i} +10-20 5".encode() for i in range(100)]
    data = os.path.join(herd.tmp, "data", "Hill")
    os.makedirs(data)
    journal = os.path.join(data, "journal")
    with open(journal, "wb") as f:
        f.write(b"HERDJ002")
        for line in lines:
            f.write(struct.pack("<IQ", len(line), record_hash(line)) + line)
    herd.start()
    assert count(herd, "Hill") == 100
    assert b"(converted from format HERDJ002 to HERDJ003)" in herd.log("Hill")
    with open(journal, "rb") as f:
        content = f.read()
    assert content.startswith(b"HERDJ003") and content.count(b"\nHJ3") == 100
    send_updates(herd.port("Hill"), ["after"], "6")
    mark = restart_log(herd, "Hill", kill=False)
    assert count(herd, "Hill") == 101
    assert b"converted from format" not in herd.log("Hill")[mark:]


def s_mount(path, size):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True, text=True)


def test_full_disk_tears_no_record(make_herd):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    herd = make_herd(names=["Hill"], edges=[],
                     extra_herd="ack_timeout_ms = 1000\nmax_pending = 1000")
    data = os.path.join(herd.tmp, "data", "Hill")
    journal = os.path.join(data, "journal")
    os.makedirs(data)
    mounted = s_mount(data, "512k")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        herd.start()
        port = herd.port("Hill")
        pad = "x" * 200
        acked = []
        #  Fill the file system: ~2000 records of ~260 bytes fill 512 KiB.
        #  What is acknowledged is written, so the first burst that gets no
        #  AT is the one the disk refused
        while b"journal write failed" not in herd.log("Hill"):
            assert len(acked) < 8000, "the journal never failed on a full disk"
            names = [f"full{len(acked) + i}{pad}" for i in range(250)]
            try:
                acked += send_updates(port, names, "7")
            except (EOFError, ConnectionError, AssertionError):
                wait_for(lambda: b"journal write failed" in herd.log("Hill"), 10,
                         what="the log to say the journal write failed")
        #  More while it is full: not acknowledged (the connection is closed
        #  after ack_timeout_ms), but applied and kept buffered
        held = [f"during{i}{pad}" for i in range(300)]
        c = Client(port)
        c.send("".join(f"IAMAT {name} +10-20 7\n" for name in held))
        try:
            assert c.read_all() == b""
        except ConnectionResetError:
            pass                #  closed with our lines unread: no AT came either
        c.close()
        assert b"No space left on device" in herd.log("Hill")
        #  Space comes back
        r = subprocess.run(["mount", "-o", "remount,size=8m", data], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        acked += send_updates(port, [f"later{i}{pad}" for i in range(100)], "8")

        #  Every acknowledged record reaches the file (what was buffered
        #  during the failure included), without waiting for a restart
        def written():
            with open(journal, "rb") as f:
                content = f.read()
            return all(f" {name} ".encode() in content for name in acked + held)
        wait_for(written, 10, what="the buffered records to be written")
        mark = restart_log(herd, "Hill")
        log = herd.log("Hill")[mark:]
        #  No torn record anywhere: nothing damaged, nothing lost
        assert b"journal damaged" not in log, log
        assert count(herd, "Hill") >= len(acked) + len(held)
        for name in (acked[0], f"during0{pad}", f"during299{pad}", f"later99{pad}"):
            first, _ = whatsat(port, name, 1, 1)
            assert first.startswith(b"AT Hill ") and f" {name} ".encode() in first, first
    finally:
        codes = herd.stop()
        if subprocess.run(["umount", data], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", data], capture_output=True)
    assert all(c == 0 for c in codes.get("Hill", [])), codes


def test_max_line_over_the_cap_is_refused(tmp_path):
    herd = Herd(str(tmp_path), names=["Hill"], edges=[], extra_herd="max_line = 33554433")
    r = subprocess.run([HERD_BIN, "node", "Hill", "-c", herd.config], capture_output=True,
                       text=True, timeout=30, env=herd.env)
    assert r.returncode != 0
    assert re.search(re.escape(herd.config) + r":\d+: herd: key 'max_line'", r.stderr), r.stderr
    assert "33554432" in r.stderr, r.stderr


def test_longest_line_survives_a_kill(make_herd):
    max_line = 33554432
    herd = make_herd(names=["Hill"], edges=[], extra_herd=f"max_line = {max_line}").start()
    port = herd.port("Hill")
    #  An IAMAT of ~32 MiB (its client id), then small ones after it
    big = "b" * (max_line - 100)
    c = Client(port, timeout=60)
    c.send(f"IAMAT {big} +1+1 5\n")
    reply = c.read_line()
    assert reply.startswith(b"AT Hill ") and len(reply) > max_line - 100
    c.close()
    send_updates(port, [f"small{i}" for i in range(50)], "6")
    #  The node answers AT before the bus has stored the update: wait for
    #  the journal file to hold them all (the 32 MiB record delays the rest)
    journal = os.path.join(herd.tmp, "data", "Hill", "journal")

    def written():
        with open(journal, "rb") as f:
            content = f.read()
        return content.count(b"b" * 1000) > 0 and b" small49 " in content
    wait_for(written, 10, what="the records to reach the journal")
    restart_log(herd, "Hill")
    assert count(herd, "Hill") == 51
    log = herd.log("Hill")
    assert b"journal damaged" not in log
    for name in ("small0", "small49"):
        first, _ = whatsat(port, name, 1, 1)
        assert first.endswith(f" {name} +10-20 6".encode()), first
