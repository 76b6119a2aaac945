// The dashboard's shell: who is signed in, which bot, the navigation, and
// a hash router (`#/faqs`) that renders one page module at a time into
// <main>. `document.body.dataset.ready` names the page once it has its data
// (the end-to-end test and bench/dashboard.mjs wait for it).
import { api, h, session, errorText } from "./lib.js";

const PAGES = {
  overview: ["Overview", () => import("./pages/overview.js")],
  faqs: ["FAQs", () => import("./pages/faqs.js")],
  unanswered: ["Unanswered", () => import("./pages/unanswered.js")],
  conversations: ["Conversations", () => import("./pages/conversations.js")],
  widget: ["Widget", () => import("./pages/widget.js")],
  members: ["Members", () => import("./pages/members.js")],
  billing: ["Billing", () => import("./pages/billing.js")],
  account: ["Account", () => import("./pages/account.js")],
};

// Pages for whoever is signed out: sign-up and getting back in by mail.
const PUBLIC = {
  signup: ["Sign up", async (view) => {
    const mod = await import("./pages/signup.js");
    mod.render(view, async () => { await loadUser(); location.hash = "#/overview"; });
  }],
  forgot: ["Forgot password", async (view) => (await import("./pages/recover.js")).forgot(view)],
  reset: ["Choose a new password", async (view, rest) => (await import("./pages/recover.js")).reset(view, rest[0] || "")],
  verify: ["Confirm your address", async (view, rest) => (await import("./pages/recover.js")).verify(view, rest[0] || "")],
};

const main = document.getElementById("main");
const top = document.getElementById("top");
const nav = document.getElementById("nav");
const tenantSelect = document.getElementById("tenant");

async function loadUser() {
  try {
    session.user = await api("GET", "auth/user", undefined, { quiet401: true });
  } catch {
    session.user = null;
  }
  return session.user;
}

async function tenants() {
  const mine = session.user.memberships.map((m) => m.tenant);
  if (!session.user.is_operator) return mine;
  try {
    const all = await api("GET", "tenants");
    return [...new Set([...mine, ...all.map((t) => t.schema)])];
  } catch {
    return mine;
  }
}

async function chooseTenant(name) {
  session.tenant = name;
  try { localStorage.setItem("chatter:dashboard:tenant", name); } catch { /* private mode */ }
  const m = await api("GET", "auth/membership");
  session.role = m.role;
  session.isOperator = m.is_operator;
  document.body.classList.toggle("readonly", !session.canEdit);
  await billingBanner();
}

// Billing on this server: the Billing page shows, and a banner tells the
// owner when the month's conversations reach the warning share (80%), or
// the trial or subscription has lapsed.
async function billingBanner() {
  const banner = document.getElementById("billing-banner");
  session.billing = false;
  banner.hidden = true;
  let s;
  try { s = (await api("GET", "billing")).status; } catch { return; }
  session.billing = s.billing;
  let text = "";
  if (s.billing && !s.chat_open) text = "Your bot is not answering visitors: choose a plan on the Billing page.";
  else if (s.billing && s.in_grace) text = "Your trial or subscription has ended: your bot answers for a few more days. See Billing.";
  else if (s.billing && s.usage_warning) {
    const cap = s.limits.conversations_per_month;
    text = `Your bot has used ${s.conversations_this_month.toLocaleString()} of its ${cap.toLocaleString()} conversations this month. See Billing to upgrade.`;
  }
  if (text) {
    banner.replaceChildren(h("span", {}, text), " ", h("a", { href: "#/billing" }, "Billing"));
    banner.hidden = false;
  }
}

async function shell() {
  const list = await tenants();
  tenantSelect.replaceChildren(...list.map((t) => h("option", { value: t }, t)));
  let saved = null;
  try { saved = localStorage.getItem("chatter:dashboard:tenant"); } catch { /* */ }
  const pick = list.includes(saved) ? saved : list[0];
  if (pick) {
    tenantSelect.value = pick;
    await chooseTenant(pick);
  }
  document.getElementById("who").textContent = `${session.user.email}${session.role ? ` (${session.role})` : session.isOperator ? " (operator)" : ""}`;
  nav.replaceChildren(...Object.entries(PAGES)
    .filter(([id]) => (id !== "members" || session.canEdit) && (id !== "billing" || session.billing))
    .map(([id, [label]]) => h("li", {}, h("a", { href: `#/${id}`, "data-page": id }, label))));
  top.hidden = false;
  return list.length > 0;
}

tenantSelect.addEventListener("change", async () => {
  await chooseTenant(tenantSelect.value);
  route();
});

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("DELETE", "auth/session"); } catch { /* the cookies are cleared either way */ }
  session.user = null;
  top.hidden = true;
  location.hash = "#/signin";
});

let routing = 0;
async function route() {
  const run = ++routing;
  const raw = location.hash.replace(/^#\/?/, "");
  if (raw === "main") return; // the skip link
  const [name, ...rest] = raw.split("/");
  delete document.body.dataset.ready;
  if (PUBLIC[name]) return publicPage(run, name, rest);
  if (name === "signin" || !session.user) {
    if (!session.user && !(await loadUser())) return signIn(run);
    if (name === "signin") { location.hash = "#/overview"; return; }
  }
  if (top.hidden && !(await shell())) {
    main.replaceChildren(h("h1", {}, "No bot yet"), h("p", {}, "Your account belongs to no bot. Ask the platform's operator to add you."));
    return;
  }
  const page = PAGES[name] ? name : "overview";
  if (!PAGES[name]) { history.replaceState(null, "", "#/overview"); }
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = `${PAGES[page][0]} · Chatter`;
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    const mod = await PAGES[page][1]();
    const view = h("div", { class: "page" });
    await mod.render(view, rest);
    if (run !== routing) return;
    main.replaceChildren(view);
  } catch (e) {
    if (run !== routing) return;
    main.replaceChildren(h("h1", {}, PAGES[page][0]), h("p", { class: "error", role: "alert" }, errorText(e)));
  }
  main.querySelector("h1")?.focus();
  document.body.dataset.ready = page;
}

async function publicPage(run, name, rest) {
  const [title, show] = PUBLIC[name];
  top.hidden = true;
  document.title = `${title} · Chatter`;
  const view = h("div", { class: "page signin" });
  main.replaceChildren(view);
  await show(view, rest);
  if (run !== routing) return;
  (main.querySelector("input") || main.querySelector("h1"))?.focus();
  document.body.dataset.ready = name;
}

async function signIn(run) {
  const mod = await import("./pages/signin.js");
  if (run !== routing) return;
  top.hidden = true;
  document.title = "Sign in · Chatter";
  const view = h("div", { class: "page signin" });
  mod.render(view, async () => {
    await loadUser();
    location.hash = "#/overview";
    route();
  });
  main.replaceChildren(view);
  main.querySelector("input")?.focus();
  document.body.dataset.ready = "signin";
}

window.addEventListener("hashchange", route);
route();
