"""The 50 FAQs of an outdoor-gear shop that bench/lean.sh and bench/scale.sh
give every tenant: the 20 of tests/fixtures/faq_eval.json and 30 about
stock, rental and brands. JSON on stdout, as `chatter faq import` reads it."""
import json

src = json.load(open("tests/fixtures/faq_eval.json"))
faqs = [{"question": f["question"], "answer": f["answer"]} for f in src["faqs"]]
topics = ["tents", "sleeping bags", "hiking boots", "backpacks", "stoves", "kayaks", "bikes",
          "climbing ropes", "ski jackets", "headlamps"]
for t in topics:
    faqs.append({"question": f"Do you have {t} in stock?", "answer": f"Yes, we stock {t} in every store and online."})
    faqs.append({"question": f"Can I rent {t}?", "answer": f"{t.capitalize()} can be rented by the day."})
    faqs.append({"question": f"What brands of {t} do you sell?", "answer": f"We sell the leading brands of {t}."})
print(json.dumps(faqs[:50]))
