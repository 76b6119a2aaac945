#!/usr/bin/env python3
"""The peer: sentence-transformers on torch, on the same sentences and the
same measurements as benches/embed.rs, so both can run side by side
(bench/peer.sh). Needs `pip install sentence-transformers torch` (a few GB;
use a venv: PEER_PYTHON=/path/to/venv/bin/python bench/peer.sh)."""
import os
import re
import resource
import statistics
import sys
import time

start = time.perf_counter()
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

source = open(os.path.join(os.path.dirname(__file__), "..", "benches", "embed.rs")).read()
query = re.search(r'const QUERY: &str = "(.*?)";', source).group(1)
batch_block = re.search(r"const BATCH: \[&str; 32\] = \[(.*?)\];", source, re.S).group(1)
batch = re.findall(r'"((?:[^"\\]|\\.)*)"', batch_block)
assert len(batch) == 32, len(batch)

threads = int(os.environ.get("CHATTER_EMBED_THREADS", os.cpu_count() or 1))
torch.set_num_threads(threads)
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ["CHATTER_TEST_MODEL_DIR"]
model = SentenceTransformer(model_dir, device="cpu")
model.encode([query])
print(f"torch {torch.__version__}, threads {threads}, first embedding {time.perf_counter() - start:.1f} s after start")

for _ in range(30):
    model.encode([query])
times = []
for _ in range(300):
    t = time.perf_counter()
    model.encode([query])
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"query: p50 {statistics.median(times):.2f} ms, p90 {times[int(len(times) * 0.9)]:.2f} ms")

for _ in range(5):
    model.encode(batch, batch_size=32)
t = time.perf_counter()
for _ in range(40):
    model.encode(batch, batch_size=32)
elapsed = time.perf_counter() - t
print(f"batch of 32: {40 * 32 / elapsed:.0f} sentences/s")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
