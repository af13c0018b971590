"""Reads `wrk --latency` output on stdin, prints "p50_us p99_us requests_per_sec requests"."""
import re
import sys

UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def micros(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(value) * UNITS[unit])


out = sys.stdin.read()
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
total = re.search(r"^\s*(\d+) requests in ", out, re.M)
if not rps or not total or "50" not in lat or "99" not in lat:
    sys.exit(f"wrk_summary.py: unexpected wrk output:\n{out}")
print(micros(lat["50"]), micros(lat["99"]), round(float(rps.group(1))), total.group(1))
