#!/usr/bin/env bash
# Peak memory of `chatter tenant import` on a large archive (issue 16, item
# 12): makes an archive of about SIZE_MB (80) MB of conversations, imports
# it with each binary given (default: this checkout's release build) into a
# fresh database, and prints the file size, the import's time and its peak
# RSS (GNU time's maximum resident set size).
#
#   bench/import.sh [BIN...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatter/target}"
admin="${CHATTER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
size_mb="${SIZE_MB:-80}"
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "$CARGO_TARGET_DIR/release/chatter"
fi
file=$(mktemp --suffix=.json)
name="chatter_import_bench_$$"
cleanup() { rm -f "$file"; psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
python3 - "$file" "$size_mb" <<'PY'
import json, random, sys
path, size_mb = sys.argv[1], int(sys.argv[2])
random.seed(1)
words = "when do you open delivery refund tents boots bikes price stock order track size colour return".split()
ts = "2024-05-01T10:00:00.123456Z"
faqs = [{"id": i, "question": f"Question {i}?", "answer": f"Answer {i}.", "alternatives": [],
         "embedding": None, "model_id": None, "created_at": ts, "updated_at": ts} for i in range(1, 51)]
out = open(path, "w")
head = {"format": "chatter-tenant", "version": 2, "schema": "big", "name": "Big", "domains": [],
        "bot_config": {"bot_name": "Big", "greeting": "Hi", "fallback_reply": "Sorry",
                       "match_threshold": 0.4, "theme": {}, "allowed_origins": [], "updated_at": ts},
        "faqs": faqs}
text = json.dumps(head)[:-1] + ', "conversations": ['
out.write(text)
written, c, m = len(text), 0, 0
while written < size_mb * 1_000_000:
    c += 1
    messages = []
    for turn in range(3):
        m += 1
        q = " ".join(random.choices(words, k=random.randint(4, 14)))
        messages.append({"id": m, "role": "visitor", "text": q, "faq_id": None, "score": None,
                         "created_at": ts, "feedback": None})
        m += 1
        faq = random.choice([None, random.randint(1, 50)])
        messages.append({"id": m, "role": "bot", "text": "An answer that says something useful. " * 2,
                         "faq_id": faq, "score": 0.75 if faq else 0.2, "created_at": ts,
                         "feedback": {"helpful": True, "created_at": ts, "updated_at": ts} if turn == 0 else None})
    conv = json.dumps({"id": c, "session_id": "%032x" % random.getrandbits(128), "origin": "https://shop.example.com",
                       "started_at": ts, "last_message_at": ts, "messages": messages})
    out.write(("," if c > 1 else "") + conv)
    written += len(conv) + 1
out.write("]}")
print(f"archive: {written / 1e6:.1f} MB, {c} conversations, {m} messages")
PY
for bin in "$@"; do
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name"
  DATABASE_URL="${admin%/*}/$name" DEBUG=True "$bin" migrate >/dev/null 2>&1 || true
  echo "== $bin"
  DATABASE_URL="${admin%/*}/$name" DEBUG=True /usr/bin/time -f "peak RSS %M KB, %e s" "$bin" tenant import "$file" 2>&1 | tail -3
done
