"""Nothing lost: catch-up after restarts and partitions, journals, bounded floods."""

import os
import re
import signal
import socket
import struct
import time

from herdlib import SANITIZED, Client, iamat, wait_for, whatsat


def send_updates(port, clients, when, position="+10-20", rate=None):
    """IAMAT each client at when, pipelined on one connection; optionally paced
    to rate lines/s. Returns once every AT reply has arrived."""
    c = Client(port, timeout=60)
    batch = 500
    start = time.monotonic()
    for i in range(0, len(clients), batch):
        chunk = clients[i:i + batch]
        c.send("".join(f"IAMAT {name} {position} {when}\n" for name in chunk))
        for _ in chunk:
            assert c.read_line().startswith(b"AT ")
        if rate:
            ahead = (i + len(chunk)) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)       # pacing the load, not synchronising
    c.close()


def stop_counters(herd, name):
    """(clients, applied, stale) from the bus's line at stop."""
    found = re.findall(rb"bus stopped: (\d+) clients, (\d+) applied, (\d+) stale",
                       herd.log(name))
    assert found, f"no bus stop line in {name}'s log"
    return tuple(int(x) for x in found[-1])


def test_restarted_node_catches_up(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    herd.kill("Smith", signal.SIGKILL)
    clients = [f"missed{i}" for i in range(1000)]
    send_updates(herd.port("Hill"), clients, "1700000000.5")
    others = [n for n in herd.names if n != "Smith"]
    agreed = wait_for(lambda: herd.converged(others), 10, what="the others to agree")
    assert agreed.startswith("1000 ")
    herd.start("Smith")
    started = time.monotonic()
    wait_for(lambda: herd.converged(), 2, what="Smith to catch up")
    catch_up = time.monotonic() - started
    for name in ["missed0", "missed500", "missed999"]:
        first, _ = whatsat(herd.port("Smith"), name, 1, 1)
        assert first.endswith(f" {name} +10-20 1700000000.5".encode())
    assert b"caught up with" in herd.log("Smith")
    print(f"catch-up of 1000 updates after restart: {catch_up * 1000:.0f} ms")


def test_partition_heals_to_the_newest(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    west, east = ["Hill", "Jaquez", "Smith"], ["Singleton", "Campbell"]
    cut = [("Singleton", "Jaquez"), ("Singleton", "Smith"), ("Smith", "Campbell")]
    for a, b in cut:
        herd.link(a, b, "down")
        herd.link(b, a, "down")
    clients = [f"split{i}" for i in range(200)]
    #  Each side gets its own version of every client; for even clients the
    #  west's is newer, for odd ones the east's
    c_west, c_east = Client(herd.port("Hill")), Client(herd.port("Campbell"))
    for i, name in enumerate(clients):
        west_time, east_time = (2000, 1000) if i % 2 == 0 else (1000, 2000)
        c_west.send(f"IAMAT {name} +1+1 {west_time}\n")
        c_east.send(f"IAMAT {name} -2-2 {east_time}\n")
    for _ in clients:
        c_west.read_line()
        c_east.read_line()
    wait_for(lambda: herd.converged(west), 5, what="west to agree")
    wait_for(lambda: herd.converged(east), 5, what="east to agree")
    assert herd.digests()["Hill"] != herd.digests()["Campbell"]
    #  Heal: every node converges on the newest of each client
    for a, b in cut:
        herd.link(a, b, "up")
        herd.link(b, a, "up")
    wait_for(lambda: herd.converged(), 5, what="the herd to converge after healing")
    for n in herd.names:
        for i in (0, 1, 198, 199):
            first, _ = whatsat(herd.port(n), f"split{i}", 1, 1)
            want = b"+1+1 2000" if i % 2 == 0 else b"-2-2 2000"
            assert first.endswith(want), (n, first)
    c_west.close()
    c_east.close()


def test_whole_herd_sigkill_loses_nothing(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    clients = [f"durable{i}" for i in range(500)]
    send_updates(herd.port("Singleton"), clients, "1790000000")
    before = wait_for(lambda: herd.converged(), 10, what="the herd to agree")
    for n in herd.names:
        herd.kill(n, signal.SIGKILL)
    herd.start()
    #  Each node reloads its own journal: they agree at once, with no
    #  neighbour's help needed
    assert herd.converged() == before
    first, _ = whatsat(herd.port("Hill"), "durable123", 1, 1)
    assert first.endswith(b" durable123 +10-20 1790000000")


def test_damaged_journal_keeps_its_good_records(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    send_updates(herd.port("Hill"), [f"j{i}" for i in range(100)], "5")
    herd.stop("Hill")
    herd.forget_gateway_journal("Hill")
    journal = os.path.join(herd.tmp, "data", "Hill", "journal")
    size = os.path.getsize(journal)
    #  A torn last record: the other 99 load
    with open(journal, "r+b") as f:
        f.truncate(size - 3)
    herd.start("Hill")
    assert herd.digests()["Hill"].startswith("99 ")
    log = herd.log("Hill")
    assert b"journal damaged" in log and b"truncated record" in log
    herd.stop("Hill")
    #  A corrupted record in the middle: it alone is skipped
    with open(journal, "r+b") as f:
        data = f.read()
        at = data.index(b" j50 ")
        f.seek(at + 1)
        f.write(b"X")
    herd.start("Hill")
    assert herd.digests()["Hill"].startswith("98 ")
    assert b"1 damaged record" in herd.log("Hill")
    assert b"checksum mismatch" in herd.log("Hill")
    #  And the node serves as usual
    assert iamat(herd.port("Hill"), "fresh", "+1+1", 9).startswith(b"AT Hill ")


MASK64 = (1 << 64) - 1


def splitmix64_finish(h):
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & MASK64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & MASK64
    return h ^ (h >> 31)


def record_hash_v1(line):
    """The checksum of HERDJ001 journals: FNV-1a, then the finaliser."""
    h = 0xcbf29ce484222325
    for byte in line:
        h = ((h ^ byte) * 0x100000001b3) & MASK64
    return splitmix64_finish(h)


def record_hash(line):
    """herd_record_hash, written from its description: little-endian words,
    the length in the seed, the last 0..7 bytes zero-padded, the finaliser."""
    h = 0x9e3779b97f4a7c15 ^ len(line)
    whole = len(line) - len(line) % 8
    for at in range(0, whole, 8):
        h = ((h ^ int.from_bytes(line[at:at + 8], "little")) * 0xff51afd7ed558ccd) & MASK64
        h ^= h >> 32
    h ^= int.from_bytes(line[whole:].ljust(8, b"\0"), "little")
    return splitmix64_finish(h)


def test_v1_journal_is_converted(make_herd):
    herd = make_herd(names=["Hill"], edges=[])
    #  A journal as a node before HERDJ002 wrote it
    lines = [f"AT Hill +0.000000000 old{i} +10-20 1800000000.{i:09d}".encode()
             for i in range(100)]
    data = os.path.join(herd.tmp, "data", "Hill")
    os.makedirs(data)
    journal = os.path.join(data, "journal")
    with open(journal, "wb") as f:
        f.write(b"HERDJ001")
        for line in lines:
            f.write(struct.pack("<IQ", len(line), record_hash_v1(line)) + line)
    herd.start()
    #  Every record loads; the digest (sent between nodes, so the same on
    #  every host) is the XOR of the new hash of each
    digest = 0
    for line in lines:
        digest ^= record_hash(line)
    assert herd.digests()["Hill"] == f"100 {digest:016x}"
    assert b"(converted from format HERDJ001 to HERDJ003)" in herd.log("Hill")
    with open(journal, "rb") as f:
        assert f.read(8) == b"HERDJ003"
    first, _ = whatsat(herd.port("Hill"), "old42", 1, 1)
    assert first.endswith(b" old42 +10-20 1800000000.000000042")
    #  A restart reads the converted journal, and what came after it
    assert iamat(herd.port("Hill"), "fresh", "+1+1", 9).startswith(b"AT Hill ")
    herd.stop("Hill")
    herd.start("Hill")
    assert herd.digests()["Hill"].startswith("101 ")
    assert herd.log("Hill").count(b"converted from format") == 1


def test_cyclic_flood_is_bounded(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    #  10 k updates/s for 10 s (a fifth of it under the sanitizers)
    seconds = 2 if SANITIZED else 10
    count = 10_000 * seconds
    clients = [f"flood{i}" for i in range(count)]
    send_updates(herd.port("Hill"), clients, "1600000000", rate=10_000)
    wait_for(lambda: herd.converged(), 30, what="the flood to reach every node")
    settled = herd.digests()
    degree = {n: sum(n in e for e in herd.edges) for n in herd.names}
    codes = herd.stop()
    assert all(c == [0] * len(c) for c in codes.values()), codes
    total = 0
    for n in herd.names:
        clients_n, applied, stale = stop_counters(herd, n)
        #  Each update applied once per node, never twice
        assert clients_n == count and applied == count, (n, clients_n, applied)
        #  Each neighbour passes each update on at most once
        assert stale <= degree[n] * count, (n, stale)
        total += applied + stale
    assert total <= 2 * len(herd.edges) * count + len(herd.names) * count
    assert all(v.startswith(f"{count} ") for v in settled.values())


def test_silently_dead_neighbour_is_noticed_and_caught_up(make_herd):
    """A frozen neighbour (SIGSTOP: connections stay open, nothing answers)
    is logged down by the ZMTP heartbeats, and caught up when it wakes."""
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")]).start()
    herd.wait_links()
    frozen = herd.procs["Smith"]
    for p in frozen:
        p.send_signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_for(lambda: b"bus link down Smith" in herd.log("Hill"), 8,
                 what="Hill to notice Smith is gone")
        noticed = time.monotonic() - stopped
        send_updates(herd.port("Hill"), [f"asleep{i}" for i in range(100)], "7")
    finally:
        for p in frozen:
            p.send_signal(signal.SIGCONT)
    wait_for(lambda: herd.converged(), 10, what="Smith to catch up after waking")
    first, _ = whatsat(herd.port("Smith"), "asleep42", 1, 1)
    assert first.endswith(b" asleep42 +10-20 7")
    print(f"frozen neighbour noticed after {noticed:.1f} s")


def test_long_record_is_flooded_not_caught_up(make_herd, standin):
    """A record longer than one flood message's 64 KB (max_line allows far
    more) goes out alone; it was once dropped, and reached neighbours only
    through the catch-up that the gap in the stream started."""
    herd = make_herd(names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")],
                     places_url=standin.url).start()
    herd.wait_links()
    client = "long" + "x" * 100000
    at = iamat(herd.port("Hill"), client, "+10-20", f"{time.time():.9f}")
    assert at.startswith(b"AT Hill ")
    wait_for(lambda: whatsat(herd.port("Jaquez"), client, 1, 1)[0] == at, 10,
             what="the long record at Jaquez")
    herd.stop("Jaquez")                 #  its log is complete once it stops
    log = herd.log("Jaquez")
    assert b"gap in stream" not in log and b"behind its heartbeat" not in log
