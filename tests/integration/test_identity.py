"""A herd's identity: its name and wire version on every bus message and
control request, so a node of another herd, or of another version, is
refused and logged, never applied (common/herd_msg.h, README "Herd identity").

The process mode does not matter here (the bus is the same in both): each
test runs in one."""

import re
import struct
import time
import urllib.error
import urllib.request

import pytest

import subprocess

from herdlib import HERD_BIN, SLOW, envelope, iamat, wait_for

zmq = pytest.importorskip("zmq", reason="python3-zmq is needed to speak the old wire")

PORTS = ["client_port", "bus_port", "sync_port", "monitor_port", "metrics_port"]


def share(dst, src, name):
    """Make node NAME of herd dst the very node NAME of herd src: dst's config
    names src's ports for it (dst never starts it)."""
    with open(dst.config) as f:
        text = f.read()
    for attr in PORTS:
        old, new = getattr(dst, attr)[name], getattr(src, attr)[name]
        text = re.sub(rf":{old}(?!\d)", f":{new}", text)
        getattr(dst, attr)[name] = new
    with open(dst.config, "w") as f:
        f.write(text)


def refused(herd, name):
    """The node's herd_bus_refused_messages_total, from /metrics (-1 before
    the bus has published its counters)."""
    url = f"http://127.0.0.1:{herd.metrics_port[name]}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return -1
    m = re.search(r'^herd_bus_refused_messages_total\{node="%s"\} (\S+)$' % name, text, re.M)
    return float(m.group(1)) if m else -1


def readyz(herd, name):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{herd.metrics_port[name]}/readyz", timeout=2)
        return b"ok"
    except urllib.error.HTTPError as e:
        return e.read()
    except OSError:
        return b""


def record(herd, client, node):
    """`herd get CLIENT NODE`'s line for the node: 'none', or its AT line."""
    out = herd.herd_cmd("get", client, node).stdout.strip()
    rest = out.split(" ", 1)[1] if " " in out else out
    return rest.split(" (origin ")[0]


def wait_refusing(herd, name, unless, more=4):
    """Wait until the node has refused `more` messages after now: messages sent
    after this point have reached it and been refused (heartbeats come each
    second, after any update published before them); or until unless()."""
    start = []

    def done():
        if unless():
            return True
        value = refused(herd, name)
        if not start and value >= 0:        # the bus has published its counters
            start.append(value)
        return start and value >= start[0] + more
    wait_for(done, 10, what=f"{name} to refuse {more} more messages")


@pytest.mark.parametrize("mode", ["inproc"])
def test_two_herds_on_shared_ports_never_mix(make_herd, mode):
    #  Herd a: Hill - Jaquez - Smith, where its Smith is herd b's Smith; herd
    #  b: Smith - Jaquez, where its Jaquez is herd a's Jaquez. So a's Jaquez
    #  and b's Smith subscribe to each other and ask each other to catch up
    a = make_herd(names=["Hill", "Jaquez", "Smith"],
                  edges=[("Hill", "Jaquez"), ("Jaquez", "Smith")], herd_name="a")
    b = make_herd(names=["Smith", "Jaquez"], edges=[("Smith", "Jaquez")], herd_name="b")
    share(a, b, "Smith")
    share(b, a, "Jaquez")
    a.start("Hill")
    a.start("Jaquez")
    b.start("Smith")
    a.wait_links("Jaquez")
    b.wait_links("Smith")
    #  An update at each side stays on its side
    at_b = iamat(b.port("Smith"), "from-b", "+1+1", f"{time.time():.9f}")
    at_a = iamat(a.port("Hill"), "from-a", "+2+2", f"{time.time():.9f}")
    assert at_a.startswith(b"AT Hill ") and at_b.startswith(b"AT Smith ")
    wait_for(lambda: record(a, "from-a", "Jaquez") == at_a.decode(), 5,
             what="a's own update at a's Jaquez")
    wait_refusing(a, "Jaquez", lambda: record(a, "from-b", "Jaquez") != "none")
    wait_refusing(b, "Smith", lambda: record(b, "from-a", "Smith") != "none")
    for n in ["Hill", "Jaquez"]:
        assert record(a, "from-b", n) == "none", f"herd b's update reached a's {n}"
    assert record(b, "from-a", "Smith") == "none", "herd a's update reached b's Smith"
    #  Each refuses the other's flood and catch-up requests, and says so
    wait_for(lambda: b"from 'Smith': herd 'b', ours 'a'" in a.log("Jaquez"), 5,
             what="a's Jaquez to refuse b's Smith")
    wait_for(lambda: b"from 'Jaquez': herd 'a', ours 'b'" in b.log("Smith"), 5,
             what="b's Smith to refuse a's Jaquez")
    wait_for(lambda: b"catch-up refused by Smith: herd 'a', ours 'b'" in a.log("Jaquez"), 10,
             what="a's catch-up refused by b")
    wait_for(lambda: b"catch-up refused by Jaquez: herd 'b', ours 'a'" in b.log("Smith"), 10,
             what="b's catch-up refused by a")
    wait_for(lambda: b"refused ICANHAZ request from '127.0.0.1': herd 'b', ours 'a'"
             in a.log("Jaquez"), 5, what="b's catch-up request refused in a's log")
    #  A neighbour that refuses us is no working link: not ready
    wait_for(lambda: b"link to Smith refused" in readyz(a, "Jaquez"), 5, what="a's /readyz")
    #  A flood of refusals writes one line per sender and reason: Smith's
    #  flood, and the catch-up requests from Smith's address
    assert a.log("Jaquez").count(b"herd 'b', ours 'a'") == 2
    assert b.log("Smith").count(b"catch-up refused by Jaquez") == 1


def old_update(client, seq):
    """An update in the old wire (version 1): ["U", records, sender, meta]."""
    line = f"AT Smith +0.000000000 {client} +1+1 {time.time():.9f}".encode()
    return [b"U", line, b"Smith", struct.pack("<QQ", 42, seq)]


def new_update(client, seq, env):
    frames = old_update(client, seq)
    return [frames[0], env] + frames[1:]


@pytest.mark.parametrize("mode", ["inproc"])
def test_old_wire_and_bad_version_refused(make_herd, mode):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")])
    herd.start("Hill")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub.bind(f"tcp://127.0.0.1:{herd.bus_port['Smith']}")
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(f"tcp://127.0.0.1:{herd.sync_port['Hill']}")
    try:
        #  Old frames, a version byte from the future, a byte that is no
        #  version, then a good update: the good one applied proves the
        #  others, ahead of it on the same connection, were read and refused
        seq = 0
        deadline = time.monotonic() + 10 * SLOW
        while record(herd, "marker", "Hill") == "none" \
                and record(herd, "old-wire", "Hill") == "none":
            assert time.monotonic() < deadline, "the good update never arrived"
            pub.send_multipart(old_update("old-wire", 1))
            pub.send_multipart(new_update("future", 1, envelope(version=3)))
            pub.send_multipart(new_update("garbled", 1, b"\xfftest"))
            pub.send_multipart(new_update("stranger", 1, envelope("other")))
            seq += 1
            pub.send_multipart(new_update("marker", seq, envelope()))
            time.sleep(0.05)
        for client in ["old-wire", "future", "garbled", "stranger"]:
            assert record(herd, client, "Hill") == "none", f"{client} was applied"
        for line in [b"refused update from 'Smith': wire version 1 (no envelope), ours 2",
                     b"refused update from 'Smith': wire version 3, ours 2",
                     b"refused update from 'Smith': herd 'other', ours 'test'"]:
            wait_for(lambda: line in herd.log("Hill"), 5, what=line.decode())
        #  ...each logged once, however many came
        assert herd.log("Hill").count(b"wire version 3, ours 2") == 1
        #  Control and catch-up requests of the old wire or another version
        #  are answered REFUSED and not obeyed
        requests = [
            ([b"DIGEST"], b"wire version 1 (no envelope), ours 2"),
            ([b"ICANHAZ", bytes(16), bytes(16)], b"wire version 1 (no envelope), ours 2"),
            ([b"ICANHAZ", envelope(version=1), bytes(16), bytes(16)], b"wire version 1, ours 2"),
            ([b"GET", envelope(version=3), b"marker"], b"wire version 3, ours 2"),
            ([b"LINK", envelope("other"), b"Smith", b"down"], b"herd 'other', ours 'test'"),
            ([b"LINK", b"Smith", b"down"], b"wire version 1 (no envelope), ours 2"),
        ]
        for request, reason in requests:
            dealer.send_multipart(request)
            assert dealer.poll(5000 * SLOW), f"no answer to {request}"
            assert dealer.recv_multipart() == [b"REFUSED", reason], request
        assert b"taken down by command" not in herd.log("Hill")
        #  The same requests of this herd and version are served
        dealer.send_multipart([b"GET", envelope(), b"marker"])
        assert dealer.poll(5000 * SLOW)
        assert dealer.recv_multipart()[0] == b"RECORD"
        wait_for(lambda: b"refused LINK request from '127.0.0.1': herd 'other', ours 'test'"
                 in herd.log("Hill"), 5, what="the LINK refusal logged")
    finally:
        pub.close()
        dealer.close()
        ctx.term()


@pytest.mark.parametrize("mode", ["inproc"])
def test_cli_of_another_herd_is_refused(make_herd, mode, tmp_path):
    herd = make_herd(names=["Hill"], edges=[]).start()
    iamat(herd.port("Hill"), "kiwi", "+1+1", 5)
    assert herd.herd_cmd("get", "kiwi", "Hill").returncode == 0
    other = tmp_path / "other.cfg"
    with open(herd.config) as f:
        other.write_text(f.read().replace("name = test", "name = other"))
    for args, out in [(["digest"], "Hill refused"), (["get", "kiwi", "Hill"], "Hill refused"),
                      (["link", "Hill", "Smith", "down"], "")]:
        r = subprocess.run([HERD_BIN, *args, "-c", str(other)], capture_output=True, text=True,
                           timeout=30 * SLOW, env=herd.env)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "refused" in r.stderr and "herd 'other', ours 'test'" in r.stderr, r.stderr
        assert out in r.stdout
