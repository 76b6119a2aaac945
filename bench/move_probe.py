#!/usr/bin/env python3
"""A steady chat load on one tenant at a fixed rate, open loop: request k is
sent at start + k/RATE whether or not earlier ones were answered (each on a
thread of its own), so a pause shows as the answers' latencies (taken from
the time each request was due, not sent) and as a gap between answers, not
as fewer requests. Stops when STOP_FILE exists (or after MAX_SECONDS).

  move_probe.py URL CLIENT_ID STOP_FILE MARKS_FILE

MARKS_FILE holds two times (date +%s.%N): the move's start and end. Prints
one JSON line with, for the requests due before the move, during it and
after it: how many, failed, p50, p99 and max latency (ms), and the longest
gap between two answers that arrived in that window (at RATE 20/s, about
50 ms when nothing pauses). Questions: bench/questions.txt (QUESTIONS), in
turn, each made unique by a number (so every one is inferred, before the move
as during it: the tenant's question cache answers none), each a new
visitor's first message.
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

url, client, stop_file, marks_file = sys.argv[1:5]
rate = float(os.environ.get("RATE", "20"))
max_seconds = float(os.environ.get("MAX_SECONDS", "180"))
questions = [q.strip() for q in open(os.environ.get("QUESTIONS", "bench/questions.txt")) if q.strip()]

lock = threading.Lock()
results = []  # (due, end, status)


def ask(k, due):
    body = json.dumps({"message": f"{questions[k % len(questions)]} #{tag}-{k}"}).encode()
    req = urllib.request.Request(url + "/api/chat", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Client-ID": client})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception as e:  # connection refused, timeout
        status = type(e).__name__
    end = time.time()
    with lock:
        results.append((due, end, status))


began = time.time()
tag = int(began) % 100000
threads = []
k = 0
while not os.path.exists(stop_file) and time.time() - began < max_seconds:
    due = began + k / rate
    delay = due - time.time()
    if delay > 0:
        time.sleep(delay)
    t = threading.Thread(target=ask, args=(k, due), daemon=True)
    t.start()
    threads.append(t)
    k += 1
for t in threads:
    t.join(timeout=130)

marks = [float(x) for x in open(marks_file).read().split()] if os.path.exists(marks_file) else []
start, end = (marks + [float("inf"), float("inf")])[:2]


def window(lo, hi):
    due_in = [(d, e, s) for d, e, s in results if lo <= d < hi]
    ok = sorted((e - d) * 1000 for d, e, s in due_in if s == 200)
    # Gaps between consecutive answers (whenever they were due) that overlap
    # the window: a pause that ends just after the move still counts.
    arrivals = sorted(e for d, e, s in results if s == 200)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:]) if b > lo and a < hi]
    pct = lambda p: round(ok[min(len(ok) - 1, int(len(ok) * p))], 1) if ok else None
    return {
        "requests": len(due_in),
        "failed": len(due_in) - len(ok),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(ok[-1], 1) if ok else None,
        "longest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
    }


out = {
    "rate": rate,
    "move_s": round(end - start, 2) if end != float("inf") else None,
    "before": window(began, start),
    "during": window(start, end),
    "after": window(end, float("inf")),
    "failures": sorted({str(s) for _, _, s in results if s != 200})[:5],
}
print(json.dumps(out))
