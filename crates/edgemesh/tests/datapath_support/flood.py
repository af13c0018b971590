"""Holds idle TCP connections through a ClusterIP, then floods its UDP port from new source ports.

usage: flood.py IP TCP_PORT UDP_PORT IDLE_TCP UDP_PORTS
  1. IDLE_TCP connections to IP:TCP_PORT, each proven relayed by one echoed byte, then held idle
     (opened 250 at a time so the pod's accept queue never overflows);
  2. UDP_PORTS datagrams to IP:UDP_PORT, each from its own source port (10000 + i, outside the
     ephemeral range so none repeats), 500 at a time with one 2 s deadline per batch;
  3. a fresh UDP client and a fresh TCP client;
  4. the first 100 held connections echo once more.
Prints one line of `key=value` pairs (tcp_held, udp_answered, fresh_udp, fresh_tcp, idle_alive).
"""
import asyncio
import resource
import selectors
import socket
import sys
import time

IP, TCP_PORT, UDP_PORT, IDLE_TCP, UDP_PORTS = sys.argv[1], *map(int, sys.argv[2:6])
TCP_BATCH, UDP_BATCH = 250, 500


async def echo_once(reader, writer, byte):
    writer.write(byte)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(1), 5) == byte


async def open_relayed():
    reader, writer = await asyncio.wait_for(asyncio.open_connection(IP, TCP_PORT), 5)
    if not await echo_once(reader, writer, b"x"):
        raise RuntimeError("wrong echo")
    return reader, writer


async def hold_tcp():
    held = []
    for first in range(0, IDLE_TCP, TCP_BATCH):
        batch = range(first, min(first + TCP_BATCH, IDLE_TCP))
        opened = await asyncio.gather(*(open_relayed() for _ in batch), return_exceptions=True)
        good = [c for c in opened if not isinstance(c, BaseException)]
        held.extend(good)
        if len(good) < len(batch):
            print(f"tcp batch at {first}: {len(batch) - len(good)} failed: {opened[-1]!r}",
                  file=sys.stderr)
            break
    return held


def udp_batch(first, count):
    """Answers from `count` new flows (source ports 10000 + first ...)."""
    selector = selectors.DefaultSelector()
    sockets = []
    for port in range(first, first + count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 10000 + port))
        s.setblocking(False)
        s.sendto(port.to_bytes(2, "big"), (IP, UDP_PORT))
        selector.register(s, selectors.EVENT_READ)
        sockets.append(s)
    answered, deadline = 0, time.monotonic() + 2
    while answered < count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            data, _ = key.fileobj.recvfrom(16)
            selector.unregister(key.fileobj)
            answered += len(data) == 2
    selector.close()
    for s in sockets:
        s.close()
    return answered


def flood_udp():
    answered = 0
    for first in range(0, UDP_PORTS, UDP_BATCH):
        count = min(UDP_BATCH, UDP_PORTS - first)
        got = udp_batch(first, count)
        answered += got
        if got < count // 2:
            break  # starved: the totals say how far it got
    return answered


def fresh_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"fresh", (IP, UDP_PORT))
    try:
        return s.recvfrom(16)[0] == b"fresh"
    except OSError:
        return False


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = await hold_tcp()
    udp = flood_udp()
    fresh_tcp = False
    try:
        reader, writer = await open_relayed()
        fresh_tcp = True
        writer.close()
    except (OSError, asyncio.TimeoutError, RuntimeError, asyncio.IncompleteReadError):
        pass
    alive = 0
    for reader, writer in held[:100]:
        try:
            alive += await echo_once(reader, writer, b"y")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
    print(f"tcp_held={len(held)} udp_answered={udp} fresh_udp={int(fresh_udp())} "
          f"fresh_tcp={int(fresh_tcp)} idle_alive={alive}", flush=True)
    for _, writer in held:
        writer.close()


asyncio.run(main())
