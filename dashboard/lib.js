// Small helpers every page uses: DOM building (text only: every string
// from a tenant or a visitor goes in as a text node, never as HTML), the
// API client (session cookie + CSRF header + the chosen bot), the toast.

/** An element; string children become text nodes. */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

/** What the dashboard knows of who is signed in and where. */
export const session = { user: null, tenant: null, role: null, isOperator: false, get canEdit() {
  return this.role === "owner" || this.isOperator;
} };

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)chatter_csrf=([^;]*)/);
  return m ? m[1] : "";
}

/** Calls `/api/<path>`; JSON in and out unless `opts.raw`. A 401 sends the browser to sign in. */
export async function api(method, path, body, opts = {}) {
  const headers = {};
  if (session.tenant) headers["X-Client-ID"] = session.tenant;
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (typeof body === "string") {
    payload = body;
    headers["Content-Type"] = opts.contentType || "text/plain";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch("/api/" + path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection.");
  }
  if (res.status === 401 && !opts.quiet401) {
    session.user = null;
    location.hash = "#/signin";
  }
  if (opts.raw && res.ok) return res;
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    throw new ApiError(res.status, data?.error?.code, data?.error?.message || `${res.status} ${res.statusText}`);
  }
  return data;
}

let toastTimer = 0;
/** A short message at the bottom; `action` adds a button (e.g. Undo). */
export function toast(text, action) {
  const box = document.getElementById("toast");
  box.replaceChildren(h("span", {}, text));
  if (action) {
    box.append(h("button", { type: "button", onclick: () => { box.replaceChildren(); action.run(); } }, action.label));
  }
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.classList.remove("show"); box.replaceChildren(); }, action ? 8000 : 4000);
}

/** A page heading, focused after navigation so screen readers hear the page. */
export function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

export function errorText(e) {
  return e instanceof ApiError ? e.message : String(e?.message || e);
}

/** Saves `text` as a file the browser downloads. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function fmtPct(x) { return `${Math.round((x || 0) * 100)}%`; }
export function fmtDate(iso) { return new Date(iso).toLocaleString(); }

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || (control.id = "f" + Math.random().toString(36).slice(2, 9));
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("small", { class: "hint" }, hint) : null);
}

/** Only owners (and operators) change things; agents see the same page without the controls. */
export function readOnlyNote() {
  // An empty text node for owners: `append(null)` would print "null".
  return session.canEdit ? document.createTextNode("") : h("p", { class: "note" }, "You can look, but only the bot's owners can change things here.");
}

/**
 * "This question belongs to FAQ X": a labelled list of the FAQs and a button;
 * the text becomes one more phrasing of the chosen FAQ, which the bot learns
 * from (its matcher is trained again). `done(faq, result)` after it is filed.
 */
export function fileUnder(text, faqs, done) {
  const select = h("select", {}, faqs.map((f) => h("option", { value: f.id }, f.question)));
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "file-under", "aria-label": `File “${text}” under a FAQ`, onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    const faq = faqs.find((f) => String(f.id) === select.value);
    if (!faq) return;
    try {
      const r = await api("POST", `faqs/${faq.id}/phrasings`, { text });
      toast(r.added ? `Filed under “${faq.question}”.` : `“${faq.question}” has that phrasing already.`);
      if (done) done(faq, r);
    } catch (err) { error.textContent = errorText(err); }
  } }, field(`FAQ for “${text}”`, select), h("button", { type: "submit" }, "File under FAQ"), error);
  return form;
}
