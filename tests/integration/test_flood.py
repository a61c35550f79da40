"""Finding 8: a client cannot hash-flood the location table.

The generator below inverts the bus table's old index function (the low 32
bits of herd_record_hash, an unkeyed and invertible hash) to make distinct
8-byte client ids that all land on one slot. With that index every insert
walked the whole run of earlier ids: 30,000 of them from one client stalled
every bus of the herd for seconds, and replaying them from the journal took
seconds too. With a keyed index they are ids like any others."""

import random
import re
import threading
import time

from herdlib import SLOW, Client, iamat, wait_for, whatsat

COUNT = 30000
UCLA = "+34.068930-118.445127"
NAMES = ["Alpha", "Bravo", "Charlie"]
LINE = [("Alpha", "Bravo"), ("Bravo", "Charlie")]
LOADED_RE = re.compile(rb"journal loaded: (\d+) records, (\d+) clients in (\d+) ms")

M64 = (1 << 64) - 1
C1, C2, C3 = 0xff51afd7ed558ccd, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb


def record_hash(data):
    """herd_record_hash (common/herd_record.c), in Python."""
    size = len(data)
    h = 0x9e3779b97f4a7c15 ^ size
    at = 0
    while size - at >= 8:
        h = ((h ^ int.from_bytes(data[at:at + 8], "little")) * C1) & M64
        h ^= h >> 32
        at += 8
    h ^= int.from_bytes(data[at:].ljust(8, b"\0"), "little")
    h ^= h >> 30
    h = (h * C2) & M64
    h ^= h >> 27
    h = (h * C3) & M64
    return h ^ (h >> 31)


def colliding_ids(count, low=0x5eed, seed=8):
    """Distinct 8-byte ids (no white space, no NUL) whose herd_record_hash has
    the given low 32 bits: run the hash backwards from random outputs."""
    i1, i2, i3 = (pow(c, -1, 1 << 64) for c in (C1, C2, C3))
    seed_word = 0x9e3779b97f4a7c15 ^ 8
    rng = random.Random(seed)
    ids = set()
    while len(ids) < count:
        x = (rng.getrandbits(32) << 32) | low
        x ^= (x >> 31) ^ (x >> 62)
        x = (x * i3) & M64
        x ^= (x >> 27) ^ (x >> 54)
        x = (x * i2) & M64
        x ^= (x >> 30) ^ (x >> 60)
        x ^= x >> 32
        word = ((x * i1) & M64) ^ seed_word
        client = word.to_bytes(8, "little")
        if min(client) > 0x20:          #  any byte but white space and NUL
            ids.add(client)
    return sorted(ids)


def test_generator_collides():
    """The generator does what it says on the old index, checked in Python."""
    assert record_hash(b"") == 0xe220a8397b1dcdaf   #  herd_record_test's known answers
    known = (b"AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 "
             b"1520023934.918963997")
    assert record_hash(known) == 0x3adc66cf62ce9ced
    ids = colliding_ids(1000)
    assert len(set(ids)) == 1000
    assert all(len(c) == 8 and record_hash(c) & 0xffffffff == 0x5eed for c in ids)


def send_all(port, ids, when):
    """One client pipelines an IAMAT per id and reads every AT answer."""
    c = Client(port)
    payload = b"".join(b"IAMAT %s %s %s\n" % (i, UCLA.encode(), when) for i in ids)
    sender = threading.Thread(target=c.send, args=(payload,))
    sender.start()
    answers = 0
    while answers < len(ids):
        chunk = c.sock.recv(1 << 20)
        assert chunk, "the node closed the flooding client"
        answers += chunk.count(b"\n")
    sender.join()
    c.close()


def bystander(herd, when):
    """Seconds from a bystander's IAMAT at Alpha to its record in WHATSAT at
    Charlie, two hops on."""
    started = time.monotonic()
    assert iamat(herd.port("Alpha"), "bystander", "+10-20", when).startswith(b"AT ")
    wait_for(lambda: whatsat(herd.port("Charlie"), "bystander", 1, 1)[0].endswith(
        f" bystander +10-20 {when}".encode()), 60, interval=0.005,
        what="the bystander's update at Charlie")
    return time.monotonic() - started


def replay_ms(herd, node, records):
    """Restart node and return how long its journal replay took (its log line)."""
    herd.stop(node)
    seen = len(LOADED_RE.findall(herd.log(node)))
    herd.start(node)
    loaded = wait_for(lambda: LOADED_RE.findall(herd.log(node))[seen:], 30,
                      what=f"{node} to load its journal")[0]
    assert int(loaded[1]) >= records, loaded
    return int(loaded[2])


def flood(herd, ids):
    """One client sends ids to Alpha while a bystander keeps updating there;
    returns (seconds until every node holds every id, the bystander's worst
    seconds to reach Charlie, Alpha's journal replay in ms)."""
    herd.start()
    herd.wait_links()
    sender = threading.Thread(target=send_all,
                              args=(herd.port("Alpha"), ids, b"%.9f" % time.time()))
    started = time.monotonic()
    sender.start()
    worst, rounds = 0.0, 0
    while True:
        rounds += 1
        worst = max(worst, bystander(herd, f"{1700000000 + rounds}"))
        if not sender.is_alive() and (herd.converged() or "").startswith(f"{len(ids) + 1} "):
            break
        assert time.monotonic() - started < 60 * SLOW, "the flood never crossed the herd"
    spread = time.monotonic() - started
    sender.join()
    return spread, worst, replay_ms(herd, "Alpha", len(ids) + 1)


def test_colliding_ids_stall_nothing(make_herd):
    ordinary = flood(make_herd(names=NAMES, edges=LINE),
                     [b"client%02d" % i for i in range(COUNT)])
    colliding = flood(make_herd(names=NAMES, edges=LINE), colliding_ids(COUNT))
    for name, (spread, worst, replay) in (("ordinary", ordinary), ("colliding", colliding)):
        print(f"{COUNT} {name} ids: in every node after {spread * 1000:.0f} ms, bystander "
              f"at Charlie after at worst {worst * 1000:.0f} ms, journal replay {replay} ms")
    #  Bounds relative to the ordinary flood, on a machine that may be busy
    assert colliding[1] < 2 * ordinary[1] + 1.0 * SLOW
    assert colliding[0] < 3 * ordinary[0] + 1.0 * SLOW
    #  Replay: a quadratic index takes seconds for 30,000 colliding ids; tens
    #  or a few hundred ms is the noise of two test suites run side by side
    assert colliding[2] < 5 * ordinary[2] + 500 * SLOW
