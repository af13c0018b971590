"""Sends COUNT numbered datagrams to IP:PORT at RATE per second on average, in back-to-back bursts
of BURST, and counts the distinct echoes that come back within 2 s of the last send. Prints
"sent N got M"."""
import socket
import sys
import threading
import time

ip, port = sys.argv[1], int(sys.argv[2])
count, rate, per_burst = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# SO_RCVBUFFORCE (root): past net.core.rmem_max, so the client is never the one that drops.
sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
sock.connect((ip, port))
got = set()


def receive():
    sock.settimeout(0.2)
    idle_since = None
    while True:
        try:
            data = sock.recv(2048)
            got.add(data[:8])
            idle_since = None
        except socket.timeout:
            if done.is_set():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2:
                    return
        except ConnectionRefusedError:
            pass


done = threading.Event()
receiver = threading.Thread(target=receive)
receiver.start()
start = time.monotonic()
for i in range(count):
    try:
        sock.send(b"%08d" % i + b"x" * 92)
    except ConnectionRefusedError:
        pass
    if (i + 1) % per_burst == 0:
        pause = start + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
done.set()
receiver.join()
print(f"sent {count} got {len(got)}")
