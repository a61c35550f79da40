#!/usr/bin/env python3
"""asyncio_server.py - the prototypes' stack, for herd_bench: a minimal asyncio
IAMAT server that logs every line in and out to a file, as the herd does.

Written the way the Python proxy-herd prototypes this project replaces were:
asyncio streams, one coroutine per connection, readline / write / drain, and
the logging module writing each event to the server's log file.

    asyncio_server.py [--host 127.0.0.1] [--port 0] [--port-file F]
                      [--name Hill] [--log FILE]

IAMAT gets the AT line of PROTOCOL.md (time difference in integer
nanoseconds); anything else gets "? line". No WHATSAT, no flooding: this is
the floor of the asyncio stack, not a herd.
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import time

POSITION_RE = re.compile(r"^[+-]\d{1,3}(\.\d{1,15})?[+-]\d{1,3}(\.\d{1,15})?$")
TIME_RE = re.compile(r"^\d{1,18}(\.\d{1,9})?$")

log = logging.getLogger("herd")


def client_ns(text):
    """The client's time as integer nanoseconds."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def format_diff(ns):
    """Signed difference with exactly 9 fraction digits: +0.263873386."""
    sign = "-" if ns < 0 else "+"
    ns = abs(ns)
    return "%s%d.%09d" % (sign, ns // 1_000_000_000, ns % 1_000_000_000)


def answer(name, line):
    """The response to one line (without its newline)."""
    fields = line.split()
    if (len(fields) == 4 and fields[0] == "IAMAT" and POSITION_RE.match(fields[2])
            and TIME_RE.match(fields[3])):
        diff = format_diff(time.time_ns() - client_ns(fields[3]))
        return "AT %s %s %s %s %s\n" % (name, diff, fields[1], fields[2], fields[3])
    return "? %s\n" % line


async def serve(name, reader, writer):
    """One client connection: a line in, its answer out, both logged."""
    peer = writer.get_extra_info("peername")
    log.info("connection opened from %s:%s", peer[0], peer[1])
    try:
        while True:
            data = await reader.readline()
            if not data:
                break
            line = data.decode("utf-8", "replace").rstrip("\r\n")
            log.info("in %s", line)
            response = answer(name, line)
            writer.write(response.encode())
            log.info("out %s", response.rstrip("\n"))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        log.info("connection closed from %s:%s", peer[0], peer[1])
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--name", default="Hill")
    parser.add_argument("--log", default="asyncio_server.log")
    args = parser.parse_args()

    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s " + args.name + " %(message)s")
    server = await asyncio.start_server(
        lambda r, w: serve(args.name, r, w), args.host, args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(args.port_file + ".tmp", args.port_file)
    log.info("serving on %s:%d", args.host, port)
    stop = asyncio.get_running_loop().create_future()
    for signo in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signo, stop.set_result, None)
    async with server:
        await stop
    log.info("stopped")


if __name__ == "__main__":
    asyncio.run(main())
