"""herd up keeps its nodes running: a node that dies is said and started again,
after a back-off that grows while it keeps dying, and a stop is a stop."""

import os
import re
import signal
import socket
import subprocess

import pytest

from herdlib import HERD_BIN, SLOW, Herd, iamat, wait_for

DIED_RE = re.compile(r"^herd: (\S+(?: \S+)?) (died|exited) \(pid (\d+), (signal \S+|status \d+)\); "
                     r"restarting it in (\d+ m?s)$", re.M)


class Up:
    """`herd up` over a herd's config, its stdout and stderr in files."""

    def __init__(self, herd, split=False):
        self.herd = herd
        self.out_path = os.path.join(herd.tmp, "up.out")
        self.err_path = os.path.join(herd.tmp, "up.err")
        argv = [HERD_BIN, "up", "-c", herd.config] + (["--split"] if split else [])
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(argv, env=herd.env, stdout=out, stderr=err)

    def out(self):
        with open(self.out_path) as f:
            return f.read()

    def err(self):
        with open(self.err_path) as f:
            return f.read()

    def deaths(self):
        """[(label, how, pid, end, delay)] from the lines `herd up` printed."""
        return DIED_RE.findall(self.err())

    def children(self):
        """{(node, role or None): pid} of the live processes `herd up` started."""
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return {}
        found = {}
        for child in pids:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    argv = f.read().decode().split("\0")
                with open(f"/proc/{child}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except FileNotFoundError:
                continue
            if len(argv) < 3 or argv[1] != "node":
                continue        # between fork and exec: not yet the node's command line
            role = argv[argv.index("--role") + 1] if "--role" in argv else None
            found[(argv[2], role)] = child
        return found

    def stop(self):
        """SIGTERM; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung"


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _gone(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


@pytest.mark.parametrize("split", [False, True], ids=["inproc", "split"])
def test_up_restarts_a_killed_node_with_growing_back_off(tmp_path, split):
    herd = Herd(str(tmp_path), names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")],
                split=split)
    up = Up(herd, split)
    #  In --split the bus holds the data: kill that role
    target = ("Hill", "bus" if split else None)
    label = "Hill bus" if split else "Hill"
    pids = []
    try:
        for n in herd.names:
            wait_for(lambda: _accepts(herd.port(n)), 10, what=f"{n} up")
        herd.wait_links()
        roles = ["places", "bus", "gateway"] if split else [None]
        wait_for(lambda: len(up.children()) == 2 * len(roles), 10, what="every child")
        at = iamat(herd.port("Hill"), "upclient", "+1+1", 42).decode()
        assert at.startswith("AT Hill ")
        for delay in ["250 ms", "500 ms"]:
            pid = up.children()[target]
            pids.append(pid)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: len(up.deaths()) == len(pids), 10, what=f"{label}'s death said")
            assert up.deaths()[-1] == (label, "died", str(pid), "signal SIGKILL", delay)
            wait_for(lambda: up.children().get(target, pid) != pid, 10, what=f"{label} again")
            new = up.children()[target]
            wait_for(lambda: f"herd: restarted {label} (pid {new})" in up.out(), 10,
                     what="the restart said")
            #  It answers clients again, and what it acknowledged before is there
            wait_for(lambda: _accepts(herd.port("Hill")), 10, what="Hill accepts again")
            wait_for(lambda: at in herd.herd_cmd("get", "upclient", "Hill").stdout, 10,
                     what="the record kept")
            wait_for(lambda: iamat(herd.port("Hill"), f"after{delay[0]}", "+2+2", 43)
                     .startswith(b"AT Hill "), 10, what="Hill answers")
        pids += list(up.children().values())
    finally:
        status = up.stop()
    assert status == 0, up.err()
    #  Only Hill's deaths were said, and everything is gone
    assert len(up.deaths()) == 2, up.err()
    assert all(_gone(p) for p in pids)
    for n in herd.names:
        assert not _accepts(herd.port(n))


def test_up_backs_off_a_node_that_fails_at_start_and_stop_cancels_its_restart(tmp_path):
    herd = Herd(str(tmp_path), names=["Hill", "Jaquez"], edges=[("Hill", "Jaquez")])
    #  Hill's client port is taken: every start of Hill fails at once
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", herd.port("Hill")))
    holder.listen()
    up = Up(herd)
    try:
        wait_for(lambda: _accepts(herd.port("Jaquez")), 10, what="Jaquez up")
        wait_for(lambda: up.deaths(), 10, what="Hill's first failed start")
        #  SIGHUP still reaches the live nodes while Hill backs off
        path = herd.log_path("Jaquez")
        wait_for(lambda: b"starting node" in herd.log("Jaquez"), 10, what="Jaquez's log")
        os.rename(path, path + ".1")
        up.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"log reopened on SIGHUP" in herd.log("Jaquez"), 10, what="a new log")
        wait_for(lambda: len(up.deaths()) >= 3, 10, what="three failed starts of Hill")
        jaquez = up.children()[("Jaquez", None)]
    finally:
        status = up.stop()
        holder.close()
    deaths = up.deaths()
    #  Never a tight loop: each failure waits twice as long as the one before
    assert [d[4] for d in deaths[:3]] == ["250 ms", "500 ms", "1 s"], up.err()
    assert all(d[0] == "Hill" and d[1] == "exited" and d[3] == "status 1" for d in deaths)
    #  SIGTERM while Hill's restart was pending: not restarted, all stopped
    assert status == 0, up.err()
    assert "herd: not restarting Hill" in up.out(), up.out()
    assert up.out().count("herd: restarted Hill") == len(deaths) - 1, up.out()
    assert _gone(jaquez)
    assert not _accepts(herd.port("Jaquez")) and not _accepts(herd.port("Hill"))
