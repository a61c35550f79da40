"""netns - several "hosts" on this machine, for the multi-host tests.

Each host is a Linux network namespace with loopback up and one veth
interface, eth0, whose other end is a port of a bridge in a "switch"
namespace of its own: a LAN of HOSTS machines and one switch. Addresses
come from the IPv4 benchmarking range 198.18.0.0/15 (RFC 2544) and exist
only inside these namespaces; the default namespace is never touched (no
interface, route or address is added there), so no traffic leaves them.

Names are unique per run (pid and a random part), so parallel runs do not
collide; destroy() kills whatever still runs in the namespaces (processes
the test started there) and deletes them, which removes the veths and the
bridge with them.

Sockets are opened in a host's namespace from a short-lived thread that
setns(2)s into it; a socket stays in the namespace it was created in, and
the test's own threads never change namespace.
"""

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
SUBNET = "198.18.0"             # RFC 2544 benchmarking range, /24 of it
_libc = ctypes.CDLL(None, use_errno=True)


class Unavailable(Exception):
    """Network namespaces cannot be made here (not root, no CAP_NET_ADMIN...)."""


def ip_command():
    """Path of iproute2's ip, or None."""
    found = shutil.which("ip")
    if found:
        return found
    for path in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.access(path, os.X_OK):
            return path
    return None


class Lab:
    """HOSTS namespaces on one bridge; host i (1-based) has SUBNET.i/24 on eth0."""

    def __init__(self, hosts):
        self.ip = ip_command()
        if self.ip is None:
            raise FileNotFoundError("iproute2's ip is not installed (scripts/install-deps.sh)")
        self.prefix = f"herd{os.getpid()}-{secrets.token_hex(2)}"
        self.switch = f"{self.prefix}-sw"
        self.hosts = [f"{self.prefix}-h{i}" for i in range(1, hosts + 1)]
        self.made = []              # namespaces created so far, for destroy()

    #  -- building and tearing down ------------------------------------------

    def _ip(self, *args, check=True):
        r = subprocess.run([self.ip, *args], capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r

    def _add_namespace(self, name):
        r = self._ip("netns", "add", name, check=False)
        if r.returncode != 0:
            reason = r.stderr.strip()
            if os.geteuid() != 0 or "not permitted" in reason or "denied" in reason:
                raise Unavailable(f"cannot create a network namespace ({reason or 'not root'})")
            raise RuntimeError(f"ip netns add {name}: {reason}")
        self.made.append(name)
        self._ip("-n", name, "link", "set", "lo", "up")

    def create(self):
        """Build the namespaces, the bridge and one veth pair per host."""
        if os.geteuid() != 0:
            raise Unavailable("not root: network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN")
        self._add_namespace(self.switch)
        self._ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        self._ip("-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts, 1):
            self._add_namespace(host)
            #  Both ends are made inside the switch namespace (names there are
            #  ours alone), then eth0 moves to the host
            self._ip("-n", self.switch, "link", "add", self.port(i), "type", "veth",
                     "peer", "name", "eth0", "netns", host)
            self._ip("-n", self.switch, "link", "set", self.port(i), "master", "br0")
            self._ip("-n", self.switch, "link", "set", self.port(i), "up")
            self._ip("-n", host, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            self._ip("-n", host, "link", "set", "eth0", "up")
        return self

    def pids(self, namespace):
        r = self._ip("netns", "pids", namespace, check=False)
        return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []

    def destroy(self):
        """Kill what still runs in our namespaces, then delete them."""
        errors = []
        for name in reversed(self.made):
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            r = self._ip("netns", "del", name, check=False)
            if r.returncode != 0:
                errors.append(f"{name}: {r.stderr.strip()}")
        self.made = []
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))

    #  -- naming ---------------------------------------------------------------

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i}"

    @staticmethod
    def port(i):
        """Host i's port on the switch (the bridge end of its veth)."""
        return f"p{i}"

    def namespace(self, i):
        return self.hosts[i - 1]

    #  -- using the hosts ------------------------------------------------------

    def exec_argv(self, i, argv):
        """argv run on host i (`ip netns exec` execs it: same pid)."""
        return [self.ip, "netns", "exec", self.namespace(i), *argv]

    def cable(self, i, state):
        """Unplug (down) or plug in (up) host i's cable at the switch."""
        self._ip("-n", self.switch, "link", "set", self.port(i), state)

    def socket(self, i, family=socket.AF_INET, kind=socket.SOCK_STREAM):
        """A socket in host i's namespace."""
        result = {}

        def make():
            try:
                with open(f"/run/netns/{self.namespace(i)}") as ns:
                    if _libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns: {os.strerror(err)}")
                result["sock"] = socket.socket(family, kind)
            except BaseException as e:      # handed to the caller's thread
                result["error"] = e

        worker = threading.Thread(target=make)
        worker.start()
        worker.join()
        if "error" in result:
            raise result["error"]
        return result["sock"]

    def connect(self, i, address, timeout):
        """A TCP connection from host i to (HOST, PORT)."""
        sock = self.socket(i)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
