#!/usr/bin/env python3
"""Catch-up figures for the five-node herd: time and bytes to catch up a node
that missed N updates while it was down. Not a test: prints a table.

Usage: HERD_BIN=build/release/bin/herd scripts/measure-catchup.py [N ...]
"""

import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from herdlib import Client, Herd, wait_for  # noqa: E402


def send(port, count, prefix):
    c = Client(port, timeout=120)
    for i in range(0, count, 1000):
        n = min(1000, count - i)
        c.send("".join(f"IAMAT {prefix}{i + j} +10-20 1700000000\n" for j in range(n)))
        for _ in range(n):
            c.read_line()
    c.close()


def measure(count):
    with tempfile.TemporaryDirectory() as tmp:
        herd = Herd(tmp).start()
        try:
            herd.wait_links()
            herd.kill("Smith", signal.SIGKILL)
            send(herd.port("Hill"), count, "m")
            others = [n for n in herd.names if n != "Smith"]
            wait_for(lambda: herd.converged(others), 120, interval=0.1, what="others")
            start = time.monotonic()
            herd.start("Smith")
            wait_for(lambda: herd.converged(), 120, interval=0.01, what="catch-up")
            elapsed = time.monotonic() - start
        finally:
            herd.stop()
        #  The log is buffered: read it after the stop flushed it; the last
        #  catch-up from each neighbour is the one after the restart
        lines = re.findall(rb"caught up with (\w+): (\d+) records, (\d+) bytes in (\d+) ms",
                           herd.log("Smith"))
        lines = list({peer: (peer, r, b, ms) for peer, r, b, ms in lines}.values())
        records = sum(int(r) for _, r, _, _ in lines)
        nbytes = sum(int(b) for _, _, b, _ in lines)
        slowest = max(int(ms) for _, _, _, ms in lines)
        return elapsed, records, nbytes, slowest


if __name__ == "__main__":
    counts = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    print(f"{'missed':>8} {'restart->agree':>15} {'records recv':>13} {'bytes recv':>11} "
          f"{'slowest peer':>13}")
    for n in counts:
        elapsed, records, nbytes, slowest = measure(n)
        print(f"{n:>8} {elapsed * 1000:>12.0f} ms {records:>13} {nbytes:>11} {slowest:>10} ms")
