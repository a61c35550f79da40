"""An authenticated, encrypted bus: CURVE on every bus and sync socket."""

import struct
import time

import pytest

from herdlib import SLOW, envelope, iamat, wait_for, whatsat

zmq = pytest.importorskip("zmq", reason="python3-zmq is needed to play a rogue peer")


def rogue_update(client):
    """A well-formed update as neighbour Smith would publish it, of the herd's
    name and wire version: only CURVE keeps it out."""
    meta = struct.pack("<QQ", 42, 1)
    line = f"AT Smith +0.000000000 {client} +1+1 {time.time():.9f}".encode()
    return [b"U", envelope(), line, b"Smith", meta]


def test_curve_herd_propagates(make_herd):
    herd = make_herd(curve=True).start()
    herd.wait_links()
    at = iamat(herd.port("Hill"), "secret-agent", "+1+1", f"{time.time():.9f}")
    for n in herd.names:
        wait_for(lambda: whatsat(herd.port(n), "secret-agent", 1, 1)[0] == at, 5, what=n)
    #  herd digest speaks CURVE too, with this host's certificate
    assert wait_for(lambda: herd.converged(), 5, what="digests").startswith("1 ")
    assert b"CURVE on: public key" in herd.log("Hill")


@pytest.mark.parametrize("rogue_curve", [True, False], ids=["unknown-key", "no-curve"])
def test_rogue_publisher_cannot_inject(make_herd, rogue_curve):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")], curve=True).start()
    herd.wait_links()
    herd.kill("Smith")
    #  A rogue takes over Smith's bus address, with a key of its own or none
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    if rogue_curve:
        public, secret = zmq.curve_keypair()
        pub.curve_server = True
        pub.curve_publickey, pub.curve_secretkey = public, secret
    pub.setsockopt(zmq.LINGER, 0)
    wait_for(lambda: _try_bind(pub, f"tcp://127.0.0.1:{herd.bus_port['Smith']}"), 5,
             what="the rogue to bind Smith's address")
    try:
        deadline = time.monotonic() + 2 * SLOW
        while time.monotonic() < deadline:
            pub.send_multipart(rogue_update("injected"))
            time.sleep(0.05)            # a steady stream for the bus to refuse
        assert whatsat(herd.port("Hill"), "injected", 1, 1)[0] == b"? WHATSAT injected 1 1"
        wait_for(lambda: b"link to Smith" in herd.log("Hill")
                 and b"refused" in herd.log("Hill"), 5, what="the refusal in Hill's log")
    finally:
        pub.close()
        ctx.term()


def test_unknown_client_key_is_refused_and_logged(make_herd):
    herd = make_herd(names=["Hill"], edges=[], curve=True).start()
    iamat(herd.port("Hill"), "private", "+1+1", 5)
    with open(f"{herd.certs}/Hill.cert") as f:
        server_key = [l.split('"')[1] for l in f if "public-key" in l][0].encode()
    ctx = zmq.Context()
    public, secret = zmq.curve_keypair()
    #  Asking the sync socket as a stranger gets nothing
    dealer = ctx.socket(zmq.DEALER)
    dealer.curve_serverkey = server_key
    dealer.curve_publickey, dealer.curve_secretkey = public, secret
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{herd.sync_port['Hill']}")
    dealer.send_multipart([b"LINK", envelope(), b"Smith", b"down"])
    dealer.send_multipart([b"DIGEST", envelope()])
    assert dealer.poll(1500) == 0
    #  Eavesdropping on the PUB as a stranger gets nothing either
    sub = ctx.socket(zmq.SUB)
    sub.curve_serverkey = server_key
    sub.curve_publickey, sub.curve_secretkey = public, secret
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{herd.bus_port['Hill']}")
    iamat(herd.port("Hill"), "private", "+2+2", 6)
    assert sub.poll(1500) == 0
    wait_for(lambda: b"refused a connection on" in herd.log("Hill")
             and b"HANDSHAKE_FAILED_AUTH" in herd.log("Hill"), 5, what="the refusal logged")
    dealer.close()
    sub.close()
    ctx.term()


def test_curve_config_needs_certificates(tmp_path):
    import subprocess
    from herdlib import HERD_BIN
    cfg = tmp_path / "c.cfg"
    cfg.write_text("node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n"
                   "    log = a.log\nsecurity\n    curve = on\n")
    r = subprocess.run([HERD_BIN, "nodes", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "missing key 'cert'" in r.stderr and "herd keygen A" in r.stderr
    cfg.write_text("node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n"
                   f"    log = a.log\n    cert = {tmp_path}/nope.cert\nsecurity\n    curve = on\n")
    r = subprocess.run([HERD_BIN, "nodes", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot load a certificate" in r.stderr


def _try_bind(sock, endpoint):
    try:
        sock.bind(endpoint)
        return True
    except zmq.ZMQError:
        return False
