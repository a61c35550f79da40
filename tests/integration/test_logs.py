"""Logging you can size, on real nodes: the request log switched off or
sampled by connection, events under log_level dropped, and log_format = json
(one object a line, client bytes exact).
"""

import json
import re
import time

import pytest

from herdlib import Client, wait_for

KIWI = "+34.068930-118.445127"
CLIENT_LINE = re.compile(rb" conn=(\d+) (in|out) ")


def session(port, name):
    """One connection: an IAMAT and a bad line, both answered; returns nothing
    until the node has answered both."""
    c = Client(port)
    at = c.request(f"IAMAT {name} {KIWI} {time.time():.9f}")
    assert at.startswith(b"AT "), at
    assert c.request("junk " + name) == b"? junk " + name.encode()
    c.close()


def serials(log, what):
    """Serials of the connections whose `what` ("opened", "closed") is logged."""
    return {int(m.group(1)) for m in re.finditer(rb"conn=(\d+) " + what.encode(), log)}


def test_requests_off_keeps_connections_and_events(make_herd):
    herd = make_herd(names=["Hill"], edges=[], extra_herd="log_requests = off").start()
    before = serials(herd.log("Hill"), "closed")
    for i in range(3):
        session(herd.port("Hill"), f"off{i}")
    wait_for(lambda: len(serials(herd.log("Hill"), "closed") - before) >= 3, 10,
             what="the connections' close lines")
    log = herd.log("Hill")
    assert not CLIENT_LINE.search(log), CLIENT_LINE.search(log)
    assert b"off1" not in log
    assert b"gateway serving clients on" in log
    assert len(serials(log, "opened from")) >= 3


def test_requests_sampled_by_connection_whole(make_herd):
    herd = make_herd(names=["Hill"], edges=[], extra_herd="log_requests = sample:2").start()
    for i in range(6):
        session(herd.port("Hill"), f"s{i}")
    wait_for(lambda: sum(f"junk s{i}".encode() in herd.log("Hill") for i in range(6)) >= 3
             and len(serials(herd.log("Hill"), "closed")) >= 6, 10,
             what="the sampled connections' lines")
    log = herd.log("Hill")
    lines = {}
    for m in CLIENT_LINE.finditer(log):
        lines.setdefault(int(m.group(1)), []).append(m.group(2))
    sessions = {}
    for i in range(6):
        m = re.search(rb"conn=(\d+) in junk s%d\n" % i, log)
        if m:
            sessions[i] = int(m.group(1))
    #  Every other connection (serial a multiple of 2), each one whole: two
    #  lines in, two out; the others not at all
    assert len(sessions) == 3, sessions
    assert all(s % 2 == 0 for s in sessions.values()), sessions
    for serial, dirs in lines.items():
        assert serial % 2 == 0, (serial, dirs)
        assert sorted(dirs) == [b"in", b"in", b"out", b"out"], (serial, dirs)
    assert len(serials(log, "opened from")) >= 6


def test_level_warning_drops_connections_keeps_link_down(make_herd, mode):
    if mode == "split":
        pytest.skip("a split node is found ready by its roles' info lines")
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")],
                     extra_herd="log_level = warning").start()
    session(herd.port("Hill"), "lvl")
    herd.link("Hill", "Smith", "down")
    wait_for(lambda: b"bus link to Smith taken down by command" in herd.log("Hill"), 10,
             what="Hill to log the link down")
    herd.link("Hill", "Smith", "up")
    log = herd.log("Hill")
    assert b"opened from" not in log and b" closed (" not in log
    assert b"starting node" not in log
    #  The request log is sized by log_requests, not by the level
    assert b" in junk lvl\n" in log and b" out ? junk lvl\n" in log


def test_json_one_object_a_line_bytes_exact(make_herd):
    herd = make_herd(names=["Hill"], edges=[], extra_herd="log_format = json").start()
    #  A quote, a control byte, a backslash, bytes that are not UTF-8, and
    #  UTF-8 that is
    raw = b'IAMAT "q\x01\\x41 \xff\xfe\xc3 caf\xc3\xa9 \xed\xa0\x80'
    c = Client(herd.port("Hill"))
    assert c.request(raw) == b"? " + raw
    session(herd.port("Hill"), "js")
    c.close()
    wait_for(lambda: len(serials(herd.log("Hill"), "closed")) >= 2, 10,
             what="the connections' close lines")
    objects = []
    for line in herd.log("Hill").splitlines():
        obj = json.loads(line.decode("utf-8"))      # strict: the file is UTF-8
        objects.append(obj)
        assert obj["time"].endswith("Z") and obj["node"] == "Hill", obj
        assert obj["role"] in ("gateway", "bus", "places", "main"), obj
        assert obj["level"] in ("debug", "info", "warning", "error"), obj
        if "event" in obj:
            assert set(obj) == {"time", "node", "role", "level", "event"}, obj
        else:
            assert set(obj) == {"time", "node", "role", "level", "conn", "dir", "line"}, obj
            assert isinstance(obj["conn"], int) and obj["dir"] in ("in", "out"), obj

    def unescape(text):
        """The documented decoding: each \\xHH is the byte HH."""
        return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                      text.encode("utf-8"))

    ins = [o for o in objects if o.get("dir") == "in" and o["line"].startswith("IAMAT \"q")]
    outs = [o for o in objects if o.get("dir") == "out" and o["line"].startswith("? IAMAT")]
    assert len(ins) == 1 and len(outs) == 1, (ins, outs)
    assert unescape(ins[0]["line"]) == raw
    assert unescape(outs[0]["line"]) == b"? " + raw
    assert ins[0]["conn"] == outs[0]["conn"]
    assert "caf\u00e9" in ins[0]["line"]            # valid UTF-8 kept as is
    opened = [o for o in objects if o.get("event", "").startswith(f"conn={ins[0]['conn']} opened")]
    assert opened and opened[0]["level"] == "info" and opened[0]["role"] == "gateway"
    assert any(o.get("line", "").startswith("AT Hill ") for o in objects)
