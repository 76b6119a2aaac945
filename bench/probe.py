"""bench/scale.sh's probe: while wrk spreads chats over thousands of
tenants, ask one warm tenant (asked every few hundred ms, so its index
stays cached) and one cold tenant (a new one each time, whose index the
load has pushed out of the cache) in turn, each question made unique so
both cost one inference, and print each side's latency percentiles.

    python3 bench/probe.py PORT SECONDS WARM_TENANT COLD_PREFIX FIRST LAST
"""
import http.client
import json
import sys
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
warm, cold_prefix, first, last = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def ask(tenant, n):
    body = json.dumps({"message": f"do you have tents in stock #{n}"})
    started = time.perf_counter()
    conn.request("POST", "/api/chat", body, {"X-Client-ID": tenant, "Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    took = (time.perf_counter() - started) * 1000
    if response.status != 200:
        print(f"  probe: {tenant} answered {response.status}", file=sys.stderr)
    return took


def pct(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)] if values else float("nan")


times = {"warm": [], "cold": []}
deadline = time.monotonic() + seconds
n, cold = 0, first
while time.monotonic() < deadline and cold <= last:
    n += 1
    times["warm"].append(ask(warm, n))
    times["cold"].append(ask(f"{cold_prefix}{cold}", n))
    cold += 1
    time.sleep(0.1)
for side in ("warm", "cold"):
    t = times[side]
    print(f"  {side} tenant ({len(t)} chats): p50 {pct(t, 0.5):.1f} ms, p90 {pct(t, 0.9):.1f} ms, "
          f"p99 {pct(t, 0.99):.1f} ms, max {max(t, default=float('nan')):.1f} ms")
