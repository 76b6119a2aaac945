// Who may use this bot's dashboard. Changing members is an operator's
// API today (`/api/users`, `/api/memberships`); owners see who belongs.
import { api, h, heading, session, toast, errorText, field } from "../lib.js";

export async function render(view) {
  view.append(heading("Members"));
  if (!session.isOperator) {
    const mine = session.user.memberships.find((m) => m.tenant === session.tenant);
    view.append(h("section", { class: "card" },
      h("p", {}, `You are ${mine ? `an ${mine.role}` : "a visitor"} of ${session.tenant}.`),
      h("p", { class: "muted" }, "Adding or removing members is done by the platform's operator for now: ask them to add an agent or owner.")));
    return;
  }
  const users = await api("GET", "users");
  const tbody = h("tbody");
  function draw(list) {
    tbody.replaceChildren(...list.filter((u) => u.memberships.some((m) => m.tenant === session.tenant)).map((u) => {
      const role = u.memberships.find((m) => m.tenant === session.tenant).role;
      const select = h("select", { "aria-label": `Role of ${u.email}` },
        ["owner", "agent"].map((r) => h("option", { value: r, selected: r === role }, r)));
      select.addEventListener("change", () => change(u.email, select.value));
      return h("tr", {}, h("td", {}, u.email), h("td", {}, select),
        h("td", {}, h("button", { type: "button", class: "quiet danger", "aria-label": `Remove ${u.email}`, onclick: () => remove(u.email) }, "Remove")));
    }));
  }
  async function reload() { draw(await api("GET", "users")); }
  async function change(email, role) {
    try { await api("POST", "memberships", { email, tenant: session.tenant, role }); toast("Role changed."); } catch (e) { toast(errorText(e)); }
  }
  async function remove(email) {
    try { await api("DELETE", "memberships", { email, tenant: session.tenant }); toast("Removed."); reload(); } catch (e) { toast(errorText(e)); }
  }
  const email = h("input", { id: "m-email", type: "email", required: true });
  const role = h("select", { id: "m-role" }, h("option", { value: "agent" }, "agent"), h("option", { value: "owner" }, "owner"));
  const error = h("p", { class: "error", role: "alert" });
  view.append(h("section", { class: "card" }, h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, h("span", { class: "sr" }, "Actions")))),
    tbody))),
  h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try { await api("POST", "memberships", { email: email.value, tenant: session.tenant, role: role.value }); e.target.reset(); reload(); toast("Added."); } catch (err) { error.textContent = errorText(err); }
  } }, h("h2", {}, "Add an existing user"), field("Email", email), field("Role", role), error, h("button", { type: "submit" }, "Add")));
  draw(users);
}
