#!/usr/bin/env python3
"""Summarises bench/lean.sh output read from standard input, for one mix:
each server's runs (chats/s, and CPU per chat of the server, the
PostgreSQL backends and PostgreSQL's background processes), then, for
every server after the first, its ratio to the first *within each
round*, with a 95% bootstrap interval of the mean ratio.

On a shared machine the host's load moves every run of a round together
(the builds alternate within a round, back to back), so the per-round
ratio is far steadier than either side's throughput; the interval says
how far the mean ratio can be trusted from that many rounds.

    bench/lean.sh BIN billed:BIN | tee lean.log
    bench/compare.py one20 < lean.log
    bench/compare.py one20 first.log second.log   (rounds of both runs)
"""

import random
import re
import statistics
import sys

SERVER = re.compile(r"^== (\S+) \(database ")
ROUND = re.compile(r"^#### round (\d+)")
RUN = re.compile(r"^\s+(\S+)\s+([\d.]+) chats/s")
CPU = re.compile(
    r"CPU per chat: server (\d+) us, PostgreSQL backends (\d+) us, "
    r"PostgreSQL background (\d+) us"
)


def parse(files, mix):
    """{server: {(file, round): [chats/s, server us, backends us, background us]}}"""
    runs, order = {}, []
    server = round_ = label = None
    lines = ((i, line) for i, f in enumerate(files) for line in f)
    for file, line in lines:
        if m := ROUND.match(line):
            round_ = (file, int(m.group(1)))
        elif m := SERVER.match(line):
            server = m.group(1)
            if server not in runs:
                runs[server] = {}
                order.append(server)
        elif m := RUN.match(line):
            label = m.group(1)
            if label == mix and server is not None:
                runs[server][round_] = [float(m.group(2))]
        elif (m := CPU.search(line)) and label == mix and server is not None:
            run = runs[server].get(round_)
            if run is not None and len(run) == 1:
                run.extend(float(g) for g in m.groups())
    return runs, order


def bootstrap(ratios, resamples=20000, seed=1):
    """95% interval of the mean of `ratios`, resampled with replacement."""
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(ratios, k=len(ratios))) for _ in range(resamples)
    )
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench/compare.py MIX [LOG...] (else standard input)")
    mix = sys.argv[1]
    files = [open(name, encoding="utf-8") for name in sys.argv[2:]] or [sys.stdin]
    runs, order = parse(files, mix)
    order = [s for s in order if runs[s]]
    if not order:
        sys.exit(f"no runs of {mix} in the input")
    print(f"{mix}: runs per server")
    for server in order:
        rows = list(runs[server].values())
        rate = [r[0] for r in rows]
        cpu = [r for r in rows if len(r) == 4]
        line = (
            f"  {server}: {len(rate)} runs, chats/s mean {statistics.fmean(rate):.0f}, "
            f"median {statistics.median(rate):.0f}, {min(rate):.0f}-{max(rate):.0f}"
        )
        if cpu:
            line += (
                ", CPU per chat (median) server "
                f"{statistics.median(r[1] for r in cpu):.0f} us, PostgreSQL "
                f"{statistics.median(r[2] for r in cpu):.0f} + "
                f"{statistics.median(r[3] for r in cpu):.0f} us"
            )
        print(line)
    base = order[0]
    for server in order[1:]:
        rounds = sorted(set(runs[base]) & set(runs[server]))
        if len(rounds) < 2:
            print(f"  {server}: fewer than 2 rounds shared with {base}")
            continue
        print(f"{server} / {base}, per round ({len(rounds)} rounds):")
        throughput = [runs[server][r][0] / runs[base][r][0] for r in rounds]
        lo, hi = bootstrap(throughput)
        print(
            f"  chats/s: mean ratio {statistics.fmean(throughput):.3f} "
            f"(95% interval {lo:.3f}-{hi:.3f}), median {statistics.median(throughput):.3f}"
        )
        both = [r for r in rounds if len(runs[base][r]) == 4 and len(runs[server][r]) == 4]
        if len(both) >= 2:
            total = [sum(runs[server][r][1:]) / sum(runs[base][r][1:]) for r in both]
            lo, hi = bootstrap(total)
            print(
                f"  CPU per chat (server + PostgreSQL): mean ratio "
                f"{statistics.fmean(total):.3f} (95% interval {lo:.3f}-{hi:.3f})"
            )


if __name__ == "__main__":
    main()
