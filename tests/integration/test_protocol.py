"""The client protocol of PROTOCOL.md on real herds: replies, errors, framing, load."""

import json
import os
import re
import socket
import threading
import time

import pytest

from herdlib import AT_RE, Client, iamat, wait_for, whatsat


def now_str():
    return f"{time.time():.9f}"


def test_iamat_reply_format(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    c = Client(herd.port("Hill"))
    sent = time.time()
    line = c.request(f"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 {sent:.9f}")
    m = AT_RE.match(line)
    assert m, line
    assert m.group(1) == b"Hill"
    assert m.group(3) == b"kiwi.cs.ucla.edu"
    assert m.group(4) == b"+34.068930-118.445127"
    assert m.group(5) == f"{sent:.9f}".encode()
    assert abs(float(m.group(2))) < 5.0
    #  Operands are echoed byte for byte, and old times give positive differences
    line = c.request("IAMAT kiwi +00.5-000.25 1621464827.9")
    assert line.startswith(b"AT Hill +")
    assert line.endswith(b" kiwi +00.5-000.25 1621464827.9")
    #  A client time in the future gives a negative difference
    line = c.request(f"IAMAT kiwi +1+1 {time.time() + 1000:.3f}")
    diff = AT_RE.match(line).group(2)
    assert diff.startswith(b"-") and -1005 < float(diff) < -995, diff
    c.close()


INVALID = [
    "", "   ", "HELLO", "IAMAT", "IAMAT a +1+1", "IAMAT a +1+1 1 2", "IAMAT a 1+1 1",
    "IAMAT a +91+0 1", "IAMAT a +0+181 1", "IAMAT a +1+1 1.0123456789", "IAMAT a +1+1 -1",
    "IAMAT a +1+1 1e9", "IAMAT a +nan+1 1", "iamat a +1+1 1", "WHATSAT", "WHATSAT a 10",
    "WHATSAT a 10 5 5", "WHATSAT a 0 5", "WHATSAT a 60 5", "WHATSAT a -1 5", "WHATSAT a 10 0",
    "WHATSAT a 10 21", "WHATSAT a ten 5", "WHATSAT a 10 5.5", "WHATSAT nobody.heard.of 10 5",
]


def test_every_invalid_form_gets_question_mark(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    c = Client(herd.port("Hill"))
    for line in INVALID:
        assert c.request(line) == b"? " + line.encode(), line
    #  \r\n endings are not part of the echo; inner white space is kept
    c.send("BAD\tline  here\r\n")
    assert c.read_line() == b"? BAD\tline  here"
    #  The connection stays open after errors
    assert c.request(f"IAMAT ok +1+1 {now_str()}").startswith(b"AT Hill ")
    c.close()


def test_pipelined_and_split_writes(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    c = Client(herd.port("Hill"))
    #  Many lines in one write, answered in order
    lines = [f"IAMAT p{i} +1+1 {1000 + i}" for i in range(100)] + ["nope"]
    c.send("".join(l + "\n" for l in lines))
    for i in range(100):
        assert c.read_line().endswith(f" p{i} +1+1 {1000 + i}".encode())
    assert c.read_line() == b"? nope"
    #  One line over many writes, byte by byte
    for b in f"IAMAT split +2-2 {now_str()}\n".encode():
        c.send(bytes([b]))
    assert b" split +2-2 " in c.read_line()
    c.close()


def test_last_line_ended_by_eof(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    c = Client(herd.port("Hill"))
    c.send("IAMAT first +1+1 1\nIAMAT last +1+1 2")
    c.sock.shutdown(socket.SHUT_WR)
    data = c.read_all()
    lines = data.split(b"\n")
    assert lines[0].endswith(b" first +1+1 1")
    assert lines[1].endswith(b" last +1+1 2")
    assert lines[2:] == [b""]
    c.close()


def test_long_lines(make_herd):
    herd = make_herd(names=["Hill"], edges=[], extra_herd="max_line = 100000").start()
    c = Client(herd.port("Hill"))
    big_id = "k" * 70_000
    line = c.request(f"IAMAT {big_id} +1+1 5")
    assert line.endswith(f" {big_id} +1+1 5".encode())
    unknown = "Z" * 80_000
    assert c.request(unknown) == b"? " + unknown.encode()
    #  Past the cap: "? " + what was kept, then the node closes the connection
    c.send("Y" * 150_000)
    data = c.read_all()
    assert data == b"? " + b"Y" * 100_000 + b"\n"
    c.close()
    #  Nobody else noticed
    assert iamat(herd.port("Hill"), "other", "+1+1", 7).startswith(b"AT Hill ")
    assert b"line longer than max_line" in wait_for(
        lambda: b"line longer" in herd.log("Hill") and herd.log("Hill"), 5, what="log")


def test_several_commands_on_one_connection(make_herd, standin):
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url).start()
    c = Client(herd.port("Hill"))
    at1 = c.request("IAMAT seq +34.068930-118.445127 100")
    c.send("WHATSAT seq 10 3\n")
    first, body = c.read_whatsat()
    assert first == at1
    assert len(json.loads(body)["results"]) == 3
    at2 = c.request("IAMAT seq +10-10 200")
    c.send("WHATSAT seq 1 20\n")
    first, body = c.read_whatsat()
    assert first == at2
    assert len(json.loads(body)["results"]) == 2        # 1 km: the stand-in has 2
    c.close()


def test_whatsat_answer_shape(make_herd, standin):
    herd = make_herd(places_url=standin.url).start()
    herd.wait_links()
    at = iamat(herd.port("Hill"), "kiwi.cs.ucla.edu", "+34.068930-118.445127", now_str())
    for radius, bound, expect in [(10, 5, 5), (10, 20, 20), (1, 5, 2), (0.2, 5, 0), (50, 1, 1)]:
        c = Client(herd.port("Hill"))
        c.send(f"WHATSAT kiwi.cs.ucla.edu {radius} {bound}\n")
        raw = b""
        while not raw.endswith(b"}\n\n"):
            chunk = c.sock.recv(1 << 20)
            assert chunk, "closed early"
            raw += chunk
        c.close()
        first, rest = raw.split(b"\n", 1)
        assert first == at
        body = rest[:-2]
        assert b"\n\n" not in body
        assert not body.endswith(b"\n")
        doc = json.loads(body)
        assert len(doc["results"]) == expect
        assert doc["status"] == ("OK" if expect else "ZERO_RESULTS")
        #  Google's layout survives the cut
        assert b'"results" : [' in body


def test_propagation_to_every_node(make_herd, standin):
    herd = make_herd(places_url=standin.url).start()
    herd.wait_links()
    for origin in herd.names:
        client = f"walker-{origin}"
        at = iamat(herd.port(origin), client, "+34.068930-118.445127", now_str())
        for n in herd.names:
            wait_for(lambda: whatsat(herd.port(n), client, 5, 1)[0] == at, 5,
                     what=f"{client} at {n}")


def test_older_update_never_wins(make_herd, standin):
    herd = make_herd(places_url=standin.url).start()
    herd.wait_links()
    new = iamat(herd.port("Hill"), "racer", "+10+10", 2000)
    for n in herd.names:
        wait_for(lambda: whatsat(herd.port(n), "racer", 1, 1)[0] == new, 5, what=n)
    #  Older updates told to every node, wherever they arrive
    for i, n in enumerate(herd.names):
        iamat(herd.port(n), "racer", "+20+20", 1999 - i)
    #  A newer one afterwards proves the older ones were processed first
    newest = iamat(herd.port("Campbell"), "racer", "+30+30", 2001)
    for n in herd.names:
        wait_for(lambda: whatsat(herd.port(n), "racer", 1, 1)[0] == newest, 5, what=n)
    #  Equal times resolve the same way everywhere
    iamat(herd.port("Hill"), "tie", "+1+1", 3000)
    iamat(herd.port("Campbell"), "tie", "+2+2", 3000)

    def agreed():
        answers = {whatsat(herd.port(n), "tie", 1, 1)[0] for n in herd.names}
        return len(answers) == 1 and not next(iter(answers)).startswith(b"?")
    wait_for(agreed, 5, what="tie agreement")


def test_many_concurrent_clients(make_herd):
    herd = make_herd(names=["Hill"], edges=[]).start()
    errors = []

    def one(i):
        try:
            c = Client(herd.port("Hill"))
            for j in range(5):
                line = c.request(f"IAMAT c{i}-{j} +1+1 {1000 + j}")
                if not line.endswith(f" c{i}-{j} +1+1 {1000 + j}".encode()):
                    errors.append(line)
            c.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_whatsat_requests_run_concurrently(make_herd, standin):
    standin.mode(latency_ms=300)
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     places_extra="concurrency = 64").start()
    iamat(herd.port("Hill"), "busy", "+34.068930-118.445127", now_str())
    clients = [Client(herd.port("Hill")) for _ in range(50)]
    start = time.monotonic()
    for c in clients:
        c.send("WHATSAT busy 10 3\n")
    for c in clients:
        first, body = c.read_whatsat()
        assert len(json.loads(body)["results"]) == 3
        c.close()
    elapsed = time.monotonic() - start
    #  Lock-step would take 50 x 300 ms = 15 s
    assert elapsed < 1.5 * (2 if herd.split else 1) * (3 if __import__("herdlib").SANITIZED else 1), elapsed


def test_order_kept_behind_a_slow_whatsat(make_herd, standin):
    standin.mode(latency_ms=400)
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url).start()
    c = Client(herd.port("Hill"))
    at = c.request("IAMAT slow +1+1 10")
    c.send("WHATSAT slow 10 1\nIAMAT slow +2+2 11\n")
    first, body = c.read_whatsat()
    assert first == at
    assert c.read_line().endswith(b" slow +2+2 11")
    c.close()


@pytest.mark.parametrize("failure,status", [
    ("request_denied", "REQUEST_DENIED"),
    ("over_query_limit", "OVER_QUERY_LIMIT"),
    ("http500", "UNKNOWN_ERROR"),
    ("malformed", "UNKNOWN_ERROR"),
    ("truncated", "UNKNOWN_ERROR"),
    ("hang", "UNKNOWN_ERROR"),
])
def test_places_failures_give_a_clear_reply(make_herd, standin, failure, status):
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     places_extra="timeout_ms = 500").start()
    at = iamat(herd.port("Hill"), "victim", "+34.068930-118.445127", now_str())
    standin.mode(failure)
    first, body = whatsat(herd.port("Hill"), "victim", 10, 5)
    assert first == at
    doc = json.loads(body)
    assert doc["status"] == status
    assert doc["results"] == []
    assert doc.get("error_message")
    #  The node keeps serving
    standin.mode("ok")
    first, body = whatsat(herd.port("Hill"), "victim", 10, 5)
    assert len(json.loads(body)["results"]) == 5


def test_threads_are_named_by_role(make_herd):
    """top -H, perf and gdb show each thread's role: herd-gateway, herd-bus,
    herd-places and herd-log, in one process or across the split ones."""
    herd = make_herd(names=["Hill"], edges=[]).start()
    wanted = {"herd-gateway", "herd-bus", "herd-places", "herd-log"}

    def names():
        found = set()
        for proc in herd.procs["Hill"]:
            for task in os.listdir(f"/proc/{proc.pid}/task"):
                try:
                    with open(f"/proc/{proc.pid}/task/{task}/comm") as comm:
                        found.add(comm.read().strip())
                except FileNotFoundError:
                    pass        # a thread that ended meanwhile
        return found

    #  Split, the places and bus processes may still be starting when the
    #  gateway accepts clients
    wait_for(lambda: wanted <= names(), 10, what=f"threads named {sorted(wanted)}")


def test_log_file(make_herd, standin):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")],
                     places_url=standin.url, key="sekret-key-XYZ").start()
    herd.wait_links()
    iamat(herd.port("Hill"), "logged", "+1+1", 5)
    whatsat(herd.port("Hill"), "logged", 10, 2)
    assert "sekret-key-XYZ" in standin.stats()["keys_seen"]
    herd.stop()
    log = herd.log("Hill")
    assert b" Hill gateway " in log
    assert b"opened from 127.0.0.1:" in log
    #  Each line in and out names its connection; an answer's own "\n" is
    #  not shown
    got_in = re.search(rb" Hill gateway conn=(\d+) in IAMAT logged \+1\+1 5\n", log)
    assert got_in, log[-2000:]
    got_out = re.search(rb" Hill gateway conn=(\d+) out (AT Hill \S+ logged \+1\+1 5)(.*)\n", log)
    assert got_out and got_out.group(1) == got_in.group(1) and got_out.group(3) == b"", log[-2000:]
    asked = re.search(rb" Hill gateway conn=(\d+) in WHATSAT logged 10 2\n", log)
    answered = re.search(rb" Hill gateway conn=(\d+) out AT Hill \S+ logged \+1\+1 5\\x0a\{", log)
    assert asked and answered and asked.group(1) == answered.group(1), log[-2000:]
    assert asked.group(1) != got_in.group(1)
    assert b"bus link up Smith " in log
    assert b" Hill places " in log
    assert b"sekret-key-XYZ" not in log
    for line in log.splitlines():
        assert AT_RE.match(line) is None
        assert line[26:27] == b"Z" and line[19:20] == b".", line
