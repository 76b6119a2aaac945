#!/usr/bin/env python3
"""Chats with one tenant from THREADS visitors, each waiting for its answer
before the next question, until STOP_FILE exists (or MAX_SECONDS pass).
Prints one JSON line: answered (200), failed, and per-request latencies
(max, p99, and the max among requests that started in [MARK_FROM, MARK_TO]
of a marks file, the move's start and end, if given).
  chat_probe.py URL CLIENT_ID STOP_FILE [MARKS_FILE]"""
import json, sys, threading, time, urllib.request, urllib.error, os

url, client, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
marks_file = sys.argv[4] if len(sys.argv) > 4 else None
threads = int(os.environ.get("THREADS", "4"))
max_seconds = float(os.environ.get("MAX_SECONDS", "300"))
lock = threading.Lock()
samples, failures = [], []
began = time.time()

def visitor(v):
    i = 0
    while not os.path.exists(stop_file) and time.time() - began < max_seconds:
        body = json.dumps({"session_id": f"probe-{v}-{i}", "message": "when do you open"}).encode()
        req = urllib.request.Request(url + "/api/chat", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Client-ID": client})
        start = time.time()
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except Exception as e:  # connection refused, timeout
            status = str(e)
        end = time.time()
        with lock:
            (samples if status == 200 else failures).append((start, end, status))
        i += 1

ts = [threading.Thread(target=visitor, args=(v,)) for v in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
lat = sorted((e - s) * 1000 for s, e, _ in samples)
out = {"answered": len(samples), "failed": len(failures),
       "failures": [str(f[2]) for f in failures[:5]],
       "p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
       "p99_ms": round(lat[int(len(lat) * 0.99)], 1) if lat else None,
       "max_ms": round(lat[-1], 1) if lat else None}
if marks_file and os.path.exists(marks_file):
    marks = [float(x) for x in open(marks_file).read().split()]
    if len(marks) >= 2:
        during = [(e - s) * 1000 for s, e, _ in samples if e >= marks[0] and s <= marks[1]]
        out["during_move"] = len(during)
        out["max_during_move_ms"] = round(max(during), 1) if during else None
        out["move_s"] = round(marks[1] - marks[0], 2)
print(json.dumps(out))
