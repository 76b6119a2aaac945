// The fallback questions of the last 30 days, grouped by meaning (the
// analytics summary's grouping). One click makes a group a new FAQ (its
// other wordings become phrasings) or files it under an existing FAQ.
import { api, h, heading, session, toast, errorText, field, readOnlyNote, fileUnder } from "../lib.js";

export async function render(view) {
  const [summary, faqs] = await Promise.all([api("GET", "analytics/summary?days=30"), api("GET", "faqs")]);
  const groups = summary.top_unanswered;
  const list = h("div", { class: "groups" });
  view.append(heading("Unanswered"), readOnlyNote(),
    h("p", { class: "muted" }, "Questions of the last 30 days the bot could not answer, grouped by meaning."), list);
  if (!groups.length) {
    list.append(h("p", { class: "card" }, "Nothing unanswered. Well done."));
    return;
  }
  groups.forEach((g, i) => {
    const others = g.examples.filter((e) => e !== g.question);
    const card = h("section", { class: "card group" },
      h("h2", {}, g.question),
      h("p", { class: "muted" }, `Asked ${g.count} time${g.count === 1 ? "" : "s"}`),
      others.length ? h("ul", { class: "examples" }, others.map((e) => h("li", {}, e))) : null);
    if (session.canEdit) {
      const answer = h("textarea", { id: `ans-${i}`, rows: 3, required: true });
      const error = h("p", { class: "error", role: "alert" });
      const make = h("form", { class: "make", onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", "faqs", { question: g.question, answer: answer.value, alternatives: others.slice(0, 20) });
          card.replaceChildren(h("p", { class: "badge ok" }, `“${g.question}” is now a FAQ. The bot answers it.`));
          toast("FAQ added.");
        } catch (err) { error.textContent = errorText(err); }
      } }, field(`Answer to “${g.question}”`, answer), error, h("button", { type: "submit" }, "Make it a FAQ"));
      // Or file every wording of the group under an existing FAQ, as
      // phrasings the bot learns from.
      const wordings = [g.question, ...others];
      const file = fileUnder(g.question, faqs, async (faq) => {
        try {
          for (const text of others) await api("POST", `faqs/${faq.id}/phrasings`, { text });
          card.replaceChildren(h("p", { class: "badge ok" },
            `Filed under “${faq.question}”: ${wordings.length} wording${wordings.length === 1 ? "" : "s"}.`));
        } catch (err) { error.textContent = errorText(err); }
      });
      card.append(make);
      if (faqs.length) card.append(h("p", { class: "muted small" }, "Or file it under a FAQ the bot should have answered with:"), file);
    }
    list.append(card);
  });
}
