#!/usr/bin/env python3
"""The soak's hostile clients, for SECONDS seconds, then a summary line.

- slow: SLOW sockets each sending a request's headers one byte every 2 s
  (the server should cut them at its header-read timeout); each reconnects
  when cut.
- idle: IDLE sockets that connect and send nothing; each reconnects when
  closed.
- hosts: a request with a unique 60 KB Host every 50 ms (refused with 400;
  must not grow memory).
Loopback only; every socket closed at the end.
"""
import os
import random
import selectors
import socket
import string
import sys
import time

port = int(sys.argv[1])
seconds = float(sys.argv[2])
slow_n = int(os.environ.get("SLOW", "100"))
idle_n = int(os.environ.get("IDLE", "200"))
end = time.monotonic() + seconds
stats = {"slow_cut": 0, "idle_cut": 0, "hosts_sent": 0, "hosts_400": 0, "hosts_other": 0, "connect_fail": 0}
SLOW_REQUEST = b"GET /api/widget/config HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-ID: tenant_0\r\nX-Slow: " + b"a" * 4000


def connect():
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        stats["connect_fail"] += 1
        s.close()
        return None
    s.setblocking(False)
    return s


sel = selectors.DefaultSelector()
slow = {}  # socket -> bytes sent
idle = set()


def open_slow():
    s = connect()
    if s:
        slow[s] = 0
        sel.register(s, selectors.EVENT_READ, "slow")


def open_idle():
    s = connect()
    if s:
        idle.add(s)
        sel.register(s, selectors.EVENT_READ, "idle")


for _ in range(slow_n):
    open_slow()
for _ in range(idle_n):
    open_idle()

next_drip = time.monotonic()
next_host = time.monotonic()
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data = b""
        if data:
            continue  # a 408 or 400 before the close; the close follows
        sel.unregister(s)
        s.close()
        if key.data == "slow":
            del slow[s]
            stats["slow_cut"] += 1
            open_slow()
        else:
            idle.discard(s)
            stats["idle_cut"] += 1
            open_idle()
    now = time.monotonic()
    if now >= next_drip:
        next_drip = now + 2
        for s in list(slow):
            sent = slow[s]
            if sent < len(SLOW_REQUEST):
                try:
                    s.send(SLOW_REQUEST[sent:sent + 1])
                    slow[s] = sent + 1
                except OSError:
                    pass
    if now >= next_host:
        next_host = now + 0.05
        s = connect()
        if s:
            host = "".join(random.choices(string.ascii_lowercase, k=60_000)) + ".test"
            s.setblocking(True)
            try:
                s.sendall(f"GET /api/widget/config HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                status = s.recv(64).split(b" ")[1]
                stats["hosts_sent"] += 1
                stats["hosts_400" if status in (b"400", b"431") else "hosts_other"] += 1
            except (OSError, IndexError):
                stats["hosts_other"] += 1
            s.close()

for s in list(slow) + list(idle):
    s.close()
print("hostile: " + ", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
