"""Opens COUNT UDP sockets (COUNT source ports, so COUNT new flows) to IP:PORT at once and sends
one numbered datagram from each, again every second until it is echoed (as a DNS client
retries); waits at most WAIT seconds for every echo. Prints
"flows N answered M (F first) the last after S s (by 1/2/5/10/20/40 s: ...)", F being the flows
whose first echo was of their first datagram: a flow whose first datagram was dropped (its
channel failed to open, a retry opened another) is answered, but not first."""
import resource
import selectors
import socket
import sys
import time

ip, port, count, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
selector = selectors.DefaultSelector()
pending = {}
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((ip, port))
    selector.register(s, selectors.EVENT_READ, i)
    pending[i] = s
start = time.monotonic()
sent_at, tries = None, 0
times, first = [], 0
while pending and time.monotonic() - start < wait:
    if sent_at is None or time.monotonic() - sent_at >= 1.0:
        sent_at = time.monotonic()
        for i, s in pending.items():
            try:
                s.send(b"flow %d try %d" % (i, tries))
            except OSError:
                pass
        tries += 1
    for key, _ in selector.select(timeout=0.2):
        try:
            data = key.fileobj.recv(2048)
        except OSError:
            continue
        if data.startswith(b"flow %d try " % key.data) and key.data in pending:
            times.append(time.monotonic() - start)
            first += data.endswith(b" try 0")
            selector.unregister(key.fileobj)
            del pending[key.data]
last = max(times, default=0.0)
by = "/".join(str(sum(t <= limit for t in times)) for limit in (1, 2, 5, 10, 20, 40))
print(f"flows {count} answered {len(times)} ({first} first) the last after {last:.1f} s (by 1/2/5/10/20/40 s: {by})", flush=True)
