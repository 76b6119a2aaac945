// Billing: the bot's plan, its state and this month's usage; owners
// subscribe, change plan, cancel at the end of the cycle and read their
// invoices. Paying happens on Razorpay's own page for the subscription
// (its `short_url`, opened in a new tab): the dashboard's strict CSP loads
// no script from elsewhere. Razorpay's webhook then moves the plan here.
import { api, h, heading, session, toast, errorText, fmtDate, readOnlyNote } from "../lib.js";

const STATES = {
  trial: "Free trial", created: "Waiting for payment", authenticated: "Payment authorised",
  active: "Active", pending: "Payment failed: Razorpay is retrying", halted: "Payments stopped",
  cancelled: "Cancelled", completed: "Completed", paused: "Paused", granted: "Granted by the platform",
  unbilled: "Unlimited",
};

function limit(n, what) { return n == null ? `Unlimited ${what}` : `${n.toLocaleString()} ${what}`; }
function money(amount, currency) {
  try { return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "INR" }).format((amount || 0) / 100); }
  catch { return `${(amount || 0) / 100} ${currency || ""}`; }
}

export async function render(view) {
  const { status: s, plans } = await api("GET", "billing");
  view.append(heading("Billing"), readOnlyNote());
  if (!s.billing) {
    view.append(h("p", { class: "card" }, "This server has no billing: your bot has no plan limits."));
    return;
  }
  const error = h("p", { class: "error", role: "alert" });
  const used = s.conversations_this_month;
  const cap = s.limits.conversations_per_month;
  const until = s.chat_until ? fmtDate(s.chat_until) : null;
  const notes = [];
  if (!s.chat_open) notes.push("Your bot is not answering visitors: choose a plan to turn it back on.");
  else if (s.in_grace) notes.push(`Grace period: your bot answers until ${until}. Choose a plan to keep it on.`);
  if (s.state === "trial" && !s.in_grace && s.trial_ends_at) notes.push(`Your trial ends ${fmtDate(s.trial_ends_at)}.`);
  if (s.cancel_at_cycle_end && s.current_period_end) notes.push(`Cancels at the end of the cycle, ${fmtDate(s.current_period_end)}.`);
  if (s.usage_warning) notes.push(cap != null && used >= cap
    ? "This month's conversations are used up: new visitors are told chat is unavailable."
    : "You have used most of this month's conversations.");

  const current = h("section", { class: "card", id: "billing-current" },
    h("h2", {}, "Your plan"),
    h("p", {}, h("strong", { id: "billing-plan" }, s.plan), " · ", h("span", { id: "billing-state" }, STATES[s.state] || s.state)),
    h("p", { id: "billing-usage" }, `Conversations this month: ${used.toLocaleString()}${cap != null ? ` of ${cap.toLocaleString()}` : ""}`),
    cap != null ? h("progress", { max: cap, value: Math.min(used, cap), "aria-label": "Conversations used this month" }) : null,
    h("ul", {}, h("li", {}, limit(s.limits.faqs, "FAQs")), h("li", {}, limit(s.limits.members, "members"))),
    ...notes.map((n) => h("p", { class: "note", role: "status" }, n)));
  view.append(current);

  const paying = ["authenticated", "active", "pending"].includes(s.state) && s.razorpay_subscription_id;
  const choose = async (plan) => {
    error.textContent = "";
    try {
      if (paying) {
        await api("POST", "billing/plan", { plan });
        toast(`Now on ${plan}.`);
      } else {
        const c = await api("POST", "billing/subscription", { plan });
        if (c.short_url) window.open(c.short_url, "_blank", "noopener");
        toast("Finish the payment on Razorpay's page; this page shows the plan once Razorpay confirms it.");
      }
      view.replaceChildren();
      await render(view);
    } catch (e) { error.textContent = errorText(e); }
  };
  const cards = plans.map((p) => h("li", { class: "card plan" },
    h("h3", {}, p.name), h("p", {}, p.price),
    h("ul", {}, h("li", {}, limit(p.limits.conversations_per_month, "conversations a month")),
      h("li", {}, limit(p.limits.faqs, "FAQs")), h("li", {}, limit(p.limits.members, "members")),
      h("li", {}, p.limits.remove_branding ? "No \u201cPowered by Chatter\u201d" : "\u201cPowered by Chatter\u201d shown")),
    session.canEdit && !(paying && p.name === s.plan)
      ? h("button", { type: "button", onclick: () => choose(p.name) }, paying ? `Switch to ${p.name}` : `Subscribe to ${p.name}`)
      : null));
  view.append(h("section", {}, h("h2", {}, "Plans"), h("ul", { class: "plans" }, cards), error));

  if (session.canEdit && paying && !s.cancel_at_cycle_end) {
    view.append(h("section", { class: "card" }, h("h2", {}, "Cancel"),
      h("p", {}, "Your bot keeps answering until the end of the current billing cycle."),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm("Cancel the subscription at the end of this billing cycle?")) return;
        try { await api("POST", "billing/cancel"); toast("Cancels at the end of the cycle."); view.replaceChildren(); await render(view); }
        catch (e) { error.textContent = errorText(e); }
      } }, "Cancel at end of cycle")));
  }
  if (session.canEdit && s.razorpay_subscription_id) {
    const list = h("tbody");
    const table = h("table", {}, h("caption", {}, "Invoices"),
      h("thead", {}, h("tr", {}, h("th", {}, "Date"), h("th", {}, "Amount"), h("th", {}, "Status"), h("th", {}, "Invoice"))), list);
    view.append(h("section", { class: "card" }, table));
    try {
      const invoices = await api("GET", "billing/invoices");
      list.replaceChildren(...invoices.map((i) => h("tr", {},
        h("td", {}, i.date ? new Date(i.date * 1000).toLocaleDateString() : ""),
        h("td", {}, money(i.amount, i.currency)), h("td", {}, i.status || ""),
        h("td", {}, i.short_url ? h("a", { href: i.short_url, target: "_blank", rel: "noopener" }, "View") : ""))));
      if (!invoices.length) list.append(h("tr", {}, h("td", { colspan: 4 }, "No invoices yet.")));
    } catch (e) {
      list.append(h("tr", {}, h("td", { colspan: 4 }, errorText(e))));
    }
  }
}
