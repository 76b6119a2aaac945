// Conversations, 20 a page from the server, with its search and filters;
// filters: dates, answered or not, marked not helpful (👎) or not;
// a transcript shows each reply's FAQ and score, and lets an owner file a
// visitor's question under a FAQ. CSV export; erasure for owners.
import { api, h, heading, session, toast, errorText, download, fmtDate, field, fileUnder } from "../lib.js";

export async function render(view, [openId]) {
  const faqList = await api("GET", "faqs");
  const faqs = new Map(faqList.map((f) => [f.id, f.question]));
  const q = h("input", { id: "conv-q", type: "search", placeholder: "Words in any message" });
  const from = h("input", { id: "conv-from", type: "date" });
  const to = h("input", { id: "conv-to", type: "date" });
  const answered = h("select", { id: "conv-answered" }, h("option", { value: "" }, "All"),
    h("option", { value: "true" }, "Answered"), h("option", { value: "false" }, "Fell back"));
  const thumbsDown = h("select", { id: "conv-down" }, h("option", { value: "" }, "All"),
    h("option", { value: "true" }, "Some answer marked not helpful"), h("option", { value: "false" }, "None marked not helpful"));
  const list = h("div", { "aria-live": "polite" });
  const detail = h("section", { class: "card transcript", hidden: true, "aria-label": "Transcript" });
  let page = 1;

  async function load() {
    const params = new URLSearchParams({ page: String(page) });
    if (q.value.trim()) params.set("q", q.value.trim());
    if (from.value) params.set("from", from.value);
    if (to.value) params.set("to", to.value);
    if (answered.value) params.set("answered", answered.value);
    if (thumbsDown.value) params.set("thumbs_down", thumbsDown.value);
    const res = await api("GET", `conversations?${params}`);
    const pages = Math.max(1, Math.ceil(res.total / res.per_page));
    list.replaceChildren(
      h("p", { class: "muted" }, `${res.total} conversation${res.total === 1 ? "" : "s"}`),
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Started", "First question", "Messages", "Answered", "Not helpful", "Site"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, res.conversations.map((c) => h("tr", {},
          h("td", {}, fmtDate(c.started_at)),
          h("td", {}, h("a", { href: `#/conversations/${c.id}`, onclick: (e) => { e.preventDefault(); show(c.id); } }, c.first_message || "(empty)")),
          h("td", {}, String(c.messages)),
          h("td", {}, c.answered ? "Yes" : "No"),
          h("td", {}, c.thumbs_down ? String(c.thumbs_down) : ""),
          h("td", { class: "small" }, c.origin || "")))))),
      h("nav", { class: "pager", "aria-label": "Pages" },
        h("button", { type: "button", class: "quiet", disabled: page <= 1, onclick: () => { page--; load(); } }, "Previous"),
        h("span", {}, `Page ${page} of ${pages}`),
        h("button", { type: "button", class: "quiet", disabled: page >= pages, onclick: () => { page++; load(); } }, "Next")));
  }

  async function show(id) {
    try {
      const t = await api("GET", `conversations/${id}`);
      detail.hidden = false;
      detail.replaceChildren(
        h("div", { class: "row spread" }, h("h2", { tabindex: "-1" }, `Conversation of ${fmtDate(t.started_at)}`),
          h("button", { type: "button", class: "quiet", onclick: () => { detail.hidden = true; } }, "Close")),
        h("ol", { class: "messages" }, t.transcript.map((m) => h("li", { class: `msg ${m.role}` },
          h("span", { class: "who" }, m.role === "bot" ? "Bot" : "Visitor"),
          h("p", {}, m.text),
          m.role === "bot" ? h("span", { class: "meta" }, m.faq_id != null
            ? `FAQ: ${faqs.get(m.faq_id) ?? `#${m.faq_id}`} · score ${m.score?.toFixed(2)}`
            : `Fallback · best score ${m.score != null ? m.score.toFixed(2) : "n/a"}`) : null,
          m.role === "visitor" && session.canEdit && faqList.length ? fileToggle(m.text) : null))),
        session.canEdit ? h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm("Erase this conversation and all its messages? This cannot be undone.")) return;
          try { await api("DELETE", `conversations/${id}`); detail.hidden = true; toast("Erased."); load(); } catch (e) { toast(errorText(e)); }
        } }, "Erase conversation") : null);
      detail.querySelector("h2").focus();
    } catch (e) { toast(errorText(e)); }
  }

  // "This question belongs to FAQ X", under a visitor's message: a button
  // that opens the choice of FAQ (made on first use: a long transcript
  // carries no form per message), closed again once filed.
  function fileToggle(text) {
    const box = h("div", { hidden: true });
    const toggle = h("button", { type: "button", class: "quiet small", "aria-expanded": "false",
      "aria-label": `File under a FAQ: ${text}`, onclick: () => {
        const open = box.hidden;
        if (open && !box.firstChild) {
          box.append(fileUnder(text, faqList, () => {
            box.hidden = true;
            toggle.setAttribute("aria-expanded", "false");
            toggle.focus();
          }));
        }
        box.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        if (open) box.querySelector("select").focus();
      } }, "File under a FAQ");
    return h("div", { class: "file" }, toggle, box);
  }

  const filters = h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); page = 1; load(); } },
    field("Search", q), field("From", from), field("To", to), field("Answered", answered), field("Not helpful", thumbsDown),
    h("button", { type: "submit" }, "Search"));
  view.append(heading("Conversations"),
    h("div", { class: "row spread" }, h("span"), h("button", { type: "button", class: "quiet", onclick: async () => {
      try {
        const res = await api("GET", "conversations/export.csv", undefined, { raw: true });
        download(`${session.tenant}-conversations.csv`, await res.text(), "text/csv");
      } catch (e) { toast(errorText(e)); }
    } }, "Export CSV")),
    filters, h("div", { class: "split" }, h("section", { class: "card" }, list), detail));
  await load();
  if (openId) await show(openId);
}
