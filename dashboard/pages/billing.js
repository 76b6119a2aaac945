// Billing: the bot's plan, its state and this month's usage; owners
// subscribe, change plan, cancel at the end of the cycle and read their
// invoices. Subscribing opens Razorpay Checkout with the new subscription:
// its script comes from Razorpay (the server allows that one origin in the
// dashboard's CSP while billing is on) and is loaded only when an owner
// clicks Subscribe. Checkout's handler sends the payment's signature to
// the server, which checks it and turns the plan on at once. If the script
// cannot load, Razorpay's hosted page for the subscription is offered
// instead; Razorpay's webhook then moves the plan here.
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

// Checkout's script, loaded once per page life, on the first Subscribe.
let checkoutScript = null;
function loadCheckout(url) {
  if (window.Razorpay) return Promise.resolve(window.Razorpay);
  if (!checkoutScript) {
    checkoutScript = new Promise((resolve, reject) => {
      const script = h("script", { src: url, async: true });
      script.onload = () => (window.Razorpay ? resolve(window.Razorpay) : reject(new Error("Checkout did not start")));
      script.onerror = () => { checkoutScript = null; script.remove(); reject(new Error("Checkout did not load")); };
      document.head.append(script);
    });
  }
  return checkoutScript;
}

/** Opens Checkout for subscription `c`; resolves once it is paid (true) or closed (false). */
async function pay(c, plan) {
  const Razorpay = await loadCheckout(c.script_url);
  return new Promise((resolve, reject) => {
    const checkout = new Razorpay({
      key: c.key_id,
      subscription_id: c.subscription_id,
      name: "Chatter",
      description: `The ${plan} plan`,
      handler: (r) => api("POST", "billing/checkout", {
        razorpay_payment_id: r.razorpay_payment_id,
        razorpay_subscription_id: r.razorpay_subscription_id,
        razorpay_signature: r.razorpay_signature,
      }).then(() => resolve(true), reject),
      modal: { ondismiss: () => resolve(false) },
    });
    if (typeof checkout.on === "function") {
      checkout.on("payment.failed", (r) => reject(new Error((r && r.error && r.error.description) || "The payment failed.")));
    }
    checkout.open();
  });
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
  const fallback = h("p", { class: "note", id: "billing-fallback", hidden: true });
  const choose = async (plan) => {
    error.textContent = "";
    fallback.hidden = true;
    try {
      if (paying) {
        await api("POST", "billing/plan", { plan });
        toast(`Now on ${plan}.`);
      } else {
        const c = await api("POST", "billing/subscription", { plan });
        let paid;
        try {
          paid = await pay(c, plan);
        } catch (e) {
          if (!(e instanceof Error) || !/did not (load|start)/.test(e.message) || !c.short_url) throw e;
          // No Checkout (blocked or unreachable): Razorpay's own page.
          fallback.replaceChildren("Razorpay Checkout could not open here. ",
            h("a", { href: c.short_url, target: "_blank", rel: "noopener" }, "Pay on Razorpay's page"),
            "; this page shows the plan once Razorpay confirms it.");
          fallback.hidden = false;
          return;
        }
        toast(paid ? `Paid: your bot is on ${plan}.` : "Checkout closed: nothing was paid.");
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
  view.append(h("section", {}, h("h2", {}, "Plans"), h("ul", { class: "plans" }, cards), error, fallback));

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
