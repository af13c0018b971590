"""Opens COUNT TCP connections to IP:PORT at once; each sends 64 bytes, reads them echoed and
closes. Waits at most WAIT seconds. Prints "connections N completed M, the last after S s;
failures: {...}" (failures by kind)."""
import asyncio
import collections
import resource
import sys
import time

ip, port, count, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def one(i, start, times):
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        payload = (b"%06d" % i) * 10 + b"\n\n\n\n"
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(len(payload))
        if got != payload:
            raise ValueError("echo mismatch")
        times.append(time.monotonic() - start)
    finally:
        writer.close()


async def main():
    start, times = time.monotonic(), []
    tasks = [asyncio.wait_for(one(i, start, times), wait) for i in range(count)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = collections.Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
    last = max(times, default=0.0)
    print(f"connections {count} completed {len(times)}, the last after {last:.1f} s; failures: {dict(failures)}", flush=True)


asyncio.run(main())
