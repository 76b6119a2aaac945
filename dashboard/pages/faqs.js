// The knowledge base: try a question, search, add, edit in place, delete
// with undo, review and remove phrasings, import with a preview naming
// every bad row, export.
import { api, h, heading, session, toast, errorText, download, field, readOnlyNote } from "../lib.js";

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

export async function render(view) {
  let faqs = await api("GET", "faqs");
  const edit = session.canEdit;
  const search = h("input", { id: "faq-search", type: "search", placeholder: "Search questions and answers" });
  const tbody = h("tbody");
  const count = h("p", { class: "muted", "aria-live": "polite" });

  function row(faq) {
    const actions = edit ? h("td", { class: "actions" },
      h("button", { type: "button", class: "quiet", "aria-label": `Edit: ${faq.question}`, onclick: () => editRow(tr, faq) }, "Edit"),
      h("button", { type: "button", class: "quiet danger", "aria-label": `Delete: ${faq.question}`, onclick: () => remove(faq) }, "Delete")) : null;
    const tr = h("tr", {},
      h("td", {}, h("strong", {}, faq.question), phrasings(faq)),
      h("td", { class: "answer" }, faq.answer),
      actions);
    return tr;
  }

  // A FAQ's other phrasings (written, filed from a conversation or learned
  // from a visitor's pick); an owner reviews them and removes any that
  // pull the wrong questions in.
  function phrasings(faq) {
    if (!faq.alternatives.length) return null;
    if (!edit) return h("div", { class: "muted small" }, `Also: ${faq.alternatives.join(" · ")}`);
    return h("ul", { class: "phrasings muted small", "aria-label": `Other phrasings of “${faq.question}”` },
      faq.alternatives.map((text) => h("li", {}, h("span", {}, text),
        h("button", { type: "button", class: "quiet small", "aria-label": `Remove phrasing “${text}” of “${faq.question}”`,
          onclick: async () => {
            try {
              await api("DELETE", `faqs/${faq.id}/phrasings`, { text });
              faqs = faqs.map((f) => (f.id === faq.id ? { ...f, alternatives: f.alternatives.filter((a) => a !== text) } : f));
              draw();
              search.focus();
              toast(`Removed “${text}”.`);
            } catch (e) { toast(errorText(e)); }
          } }, "Remove"))));
  }

  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = faqs.filter((f) => !q || [f.question, f.answer, ...f.alternatives].some((t) => t.toLowerCase().includes(q)));
    tbody.replaceChildren(...shown.map(row));
    count.textContent = `${shown.length} of ${faqs.length} FAQs`;
  }
  search.addEventListener("input", draw);

  function editRow(tr, faq) {
    const question = h("input", { value: faq.question, "aria-label": "Question" });
    const answer = h("textarea", { rows: 3, "aria-label": "Answer" }, faq.answer);
    const alts = h("textarea", { rows: 2, "aria-label": "Other phrasings, one a line" }, faq.alternatives.join("\n"));
    const error = h("p", { class: "error", role: "alert" });
    const save = async () => {
      try {
        const updated = await api("PUT", `faqs/${faq.id}`, { question: question.value, answer: answer.value, alternatives: lines(alts.value) });
        faqs = faqs.map((f) => (f.id === faq.id ? updated : f));
        draw();
        toast("Saved.");
      } catch (e) { error.textContent = errorText(e); }
    };
    const editor = h("tr", { class: "editing" }, h("td", {}, question, alts), h("td", {}, answer, error),
      h("td", { class: "actions" }, h("button", { type: "button", onclick: save }, "Save"),
        h("button", { type: "button", class: "quiet", onclick: () => editor.replaceWith(row(faq)) }, "Cancel")));
    editor.addEventListener("keydown", (e) => { if (e.key === "Escape") editor.replaceWith(row(faq)); });
    tr.replaceWith(editor);
    question.focus();
  }

  async function remove(faq) {
    try {
      await api("DELETE", `faqs/${faq.id}`);
      faqs = faqs.filter((f) => f.id !== faq.id);
      draw();
      search.focus();
      toast(`Deleted “${faq.question}”.`, { label: "Undo", run: async () => {
        try {
          faqs.push(await api("POST", "faqs", { question: faq.question, answer: faq.answer, alternatives: faq.alternatives }));
          draw();
          toast("Restored.");
        } catch (e) { toast(errorText(e)); }
      } });
    } catch (e) { toast(errorText(e)); }
  }

  view.append(heading("FAQs"), readOnlyNote(), tryBox());
  if (edit) view.append(addForm((faq) => { faqs.push(faq); draw(); }), importBox(async () => { faqs = await api("GET", "faqs"); draw(); }));
  view.append(h("section", { class: "card" },
    h("div", { class: "row spread" }, h("h2", {}, "All FAQs"),
      h("button", { type: "button", class: "quiet", onclick: () => download(`${session.tenant}-faqs.json`,
        JSON.stringify(faqs.map(({ question, answer, alternatives }) => ({ question, answer, alternatives })), null, 2), "application/json") }, "Export JSON")),
    field("Search", search), count,
    h("div", { class: "scroll" }, h("table", { class: "faqs" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Question"), h("th", { scope: "col" }, "Answer"),
        edit ? h("th", { scope: "col" }, h("span", { class: "sr" }, "Actions")) : null)),
      tbody))));
  draw();
}

// Which of a FAQ's texts came closest to the question tried.
const MATCHED = { question: "its question", alternative: "a phrasing", answer: "its answer" };

function tryBox() {
  const input = h("input", { id: "try-q", type: "text", maxlength: 2000, placeholder: "e.g. When are you open?" });
  const out = h("div", { class: "try-out", "aria-live": "polite" });
  const form = h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    out.replaceChildren(h("p", { class: "muted" }, "Asking…"));
    try {
      const r = await api("POST", "faqs/try", { message: input.value });
      out.replaceChildren(
        h("p", { class: r.matched ? "badge ok" : "badge warn" }, r.matched ? `Answered (score ${r.score.toFixed(2)}, threshold ${r.threshold.toFixed(2)})` : `Fallback (best score ${r.score.toFixed(2)}, threshold ${r.threshold.toFixed(2)})`),
        h("blockquote", { class: "reply" }, r.reply),
        h("h3", {}, "Nearest FAQs"),
        h("ol", { class: "nearest" }, r.nearest.map((n) => h("li", {},
          h("span", {}, n.question, n.matched_text != null
            ? h("small", { class: "matched" }, `matched ${MATCHED[n.matched_kind] || "phrasing"}: “${n.matched_text}”`)
            : null),
          h("span", { class: "score" }, n.score.toFixed(2))))));
    } catch (err) { out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(err))); }
  } }, h("h2", {}, "Try a question"), h("p", { class: "muted small" }, "See what the bot would reply. Nothing is stored."),
  h("div", { class: "row" }, h("label", { for: "try-q", class: "sr" }, "Question to try"), input, h("button", { type: "submit" }, "Try")), out);
  return form;
}

function addForm(added) {
  const question = h("input", { id: "new-q", required: true, maxlength: 2000 });
  const answer = h("textarea", { id: "new-a", required: true, rows: 3 });
  const alts = h("textarea", { id: "new-alts", rows: 2 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      added(await api("POST", "faqs", { question: question.value, answer: answer.value, alternatives: lines(alts.value) }));
      form.reset();
      toast("FAQ added. The bot answers it now.");
      question.focus();
    } catch (err) { error.textContent = errorText(err); }
  } }, h("h2", {}, "Add a FAQ"), field("Question", question), field("Answer", answer),
  field("Other phrasings", alts, "One a line, optional."), error, h("button", { type: "submit" }, "Add FAQ"));
  return form;
}

function importBox(imported) {
  const file = h("input", { id: "import-file", type: "file", accept: ".csv,.json,text/csv,application/json" });
  const out = h("div", { "aria-live": "polite" });
  file.addEventListener("change", async () => {
    out.replaceChildren();
    const f = file.files[0];
    if (!f) return;
    const text = await f.text();
    const type = text.trimStart().startsWith("[") ? "application/json" : "text/csv";
    try {
      const rows = await api("POST", "faqs/import/preview", text, { contentType: type });
      const bad = rows.filter((r) => r.error);
      const table = h("table", { class: "preview" },
        h("thead", {}, h("tr", {}, ["Row", "Question", "Answer", "Problem"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((r) => h("tr", { class: r.error ? "bad" : "" }, h("td", {}, r.label),
          h("td", {}, r.faq?.question ?? ""), h("td", {}, r.faq?.answer ?? ""), h("td", {}, r.error ?? "")))));
      const go = h("button", { type: "button", disabled: bad.length > 0 || rows.length === 0, onclick: async () => {
        try {
          const r = await api("POST", "faqs/import", text, { contentType: type });
          out.replaceChildren(h("p", { class: "badge ok" }, `Imported ${r.imported} FAQs.`));
          file.value = "";
          await imported();
        } catch (e) { out.append(h("p", { class: "error", role: "alert" }, errorText(e))); }
      } }, `Import ${rows.length - bad.length} FAQ${rows.length - bad.length === 1 ? "" : "s"}`);
      out.replaceChildren(
        h("p", { class: bad.length ? "error" : "muted" }, bad.length
          ? `${bad.length} bad row${bad.length > 1 ? "s" : ""}: ${bad.map((r) => r.label).join(", ")}. Fix the file; nothing was written.`
          : `${rows.length} rows, all good. Nothing is written until you import.`),
        h("div", { class: "scroll" }, table), go);
    } catch (e) { out.replaceChildren(h("p", { class: "error", role: "alert" }, errorText(e))); }
  });
  return h("section", { class: "card" }, h("h2", {}, "Import"),
    field("CSV or JSON file", file, "CSV with a header naming question and answer (and optionally alternatives, split by |), or a JSON array."), out);
}
