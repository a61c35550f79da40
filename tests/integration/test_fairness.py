"""Fairness under clients that never read: a node-wide cap on memory held for
unread answers (herd/max_output_total), the slowest readers dropped first,
other clients' latency bounded, memory given back afterwards; and a client
that reads is never dropped for the size of one answer.
"""

import re
import socket
import threading
import time

import pytest

from herdlib import SANITIZED, SLOW, Client, iamat, wait_for

KIWI = "+34.068930-118.445127"
MIB = 1024 * 1024


def now_str():
    return f"{time.time():.9f}"


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_reading_client_gets_the_answer_for_a_huge_client_id(make_herd, standin):
    """A client id of 500 kB makes one WHATSAT answer of about 530 kB (its AT
    line and the JSON), and the request line kept for '? line' is another
    500 kB: a client that reads gets that whole answer, with max_output at
    its default 1 MiB."""
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url).start()
    client = "p" * 500000
    c = Client(herd.port("Hill"), timeout=20)
    at = c.request(f"IAMAT {client} {KIWI} {now_str()}")
    assert at.startswith(b"AT Hill +") and len(at) > 500000
    for bound in (20, 20, 5):
        c.send(f"WHATSAT {client} 50 {bound}\n")
        first, body = c.read_whatsat()
        assert first == at, first[:80]
        assert body is not None and body.endswith(b"}"), body
    c.close()
    assert b"slow reader" not in herd.log("Hill"), herd.log("Hill")[-2000:]


@pytest.mark.parametrize("mode", ["inproc"])
def test_never_reading_clients_do_not_stall_others(make_herd, standin):
    """300 clients each pipeline 200 WHATSATs and never read. With
    max_output_total = 16 MiB the node holds at most about that for them,
    dropping the slowest first: a bystander's IAMAT and WHATSAT round trips
    stay fast meanwhile, the node's RSS peak stays within the cap plus slack,
    and the memory goes back once the attackers are gone."""
    attackers, asks = 300, 200
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     extra_herd="max_output_total = 16777216",
                     places_extra="cache_ttl_ms = 600000")
    if SANITIZED:
        #  ASan keeps freed memory in a 256 MB quarantine: make RSS show what
        #  is live, not what went through
        herd.env["ASAN_OPTIONS"] = herd.env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    herd.start()
    pid = herd.procs["Hill"][-1].pid
    port = herd.port("Hill")
    at = iamat(port, "kiwi", KIWI, now_str())
    bystander = Client(port)
    for _ in range(5):                      #  warm up: allocator, cache, log
        bystander.send("WHATSAT kiwi 50 20\n")
        first, body = bystander.read_whatsat()
        assert first == at and len(body) > 30000
    answer = len(first) + len(body) + 3
    base = status_kb(pid, "VmRSS")

    peak = [base]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], status_kb(pid, "VmRSS"))
            except (OSError, AssertionError):
                return
            time.sleep(0.005)
    watcher = threading.Thread(target=watch)
    watcher.start()

    hostile = []
    request = b"WHATSAT kiwi 50 20\n" * asks
    try:
        for _ in range(attackers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            try:
                s.send(request)
            except BlockingIOError:
                pass
            hostile.append(s)
        #  The bystander goes on with round trips while the attack lasts
        worst, trips = 0.0, 0
        deadline = time.monotonic() + 4 * SLOW
        while time.monotonic() < deadline:
            started = time.monotonic()
            line = bystander.request(f"IAMAT bystander +1+1 {now_str()}")
            assert line.endswith(b" bystander +1+1 " + line.split()[-1])
            bystander.send("WHATSAT kiwi 50 20\n")
            first, body = bystander.read_whatsat()
            assert first == at and body.endswith(b"}")
            worst = max(worst, time.monotonic() - started)
            trips += 1
    finally:
        for s in hostile:
            s.close()
    dropped = len(re.findall(rb"closed \(slow reader", herd.log("Hill")))
    #  Memory goes back once they are gone
    try:
        after = wait_for(lambda: (lambda r: r if r < base + 24 * 1024 else None)(
            status_kb(pid, "VmRSS")), 10, interval=0.1, what="RSS back near its baseline")
    except AssertionError:
        after = status_kb(pid, "VmRSS")
    stop.set()
    watcher.join()
    hwm = status_kb(pid, "VmHWM")
    print(f"answer {answer} B; {trips} round trips, worst {worst * 1000:.0f} ms; "
          f"{dropped} dropped; RSS base {base} kB, peak {peak[0]} kB (HWM {hwm} kB), "
          f"after {after} kB")
    #  Asked of the node: far more than it may hold
    assert attackers * asks * answer > 1024 * MIB
    #  Bound: a round trip waits at most for the WHATSATs in flight (256) and
    #  one of each waiting connection; measured 0.3-0.5 s here, 6-10 s before
    assert worst < 1.0 * SLOW, f"bystander waited {worst:.2f} s"
    #  Bound: max_output_total (16 MiB) of unread answers, the 256 in flight
    #  (10 MB), buffers' slack; measured +40-56 MB, +614 MB before
    assert peak[0] - base < (160 if SANITIZED else 80) * 1024, \
        f"RSS peak {peak[0]} kB from {base} kB"
    assert after < base + (48 if SANITIZED else 24) * 1024, \
        f"RSS {after} kB after the attack, from {base} kB"
    assert dropped >= attackers * 0.9
    bystander.close()
