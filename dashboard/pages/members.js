// Who runs this bot (owners; agents do not see this page): the members
// with their roles, add a user who has an account as an agent or owner,
// change a role, remove. The server refuses to remove or demote the last
// owner, and says so.
import { api, h, heading, session, toast, errorText, field } from "../lib.js";

export async function render(view) {
  view.append(heading("Members"));
  const tbody = h("tbody");
  const status = h("p", { class: "error", role: "alert" });
  function draw(list) {
    tbody.replaceChildren(...list.map((m) => {
      const select = h("select", { "aria-label": `Role of ${m.email}` },
        ["owner", "agent"].map((r) => h("option", { value: r, selected: r === m.role }, r)));
      select.addEventListener("change", () => change(m.email, select.value, select, m.role));
      const me = m.email === session.user.email;
      return h("tr", {}, h("td", {}, m.email, me ? h("span", { class: "muted" }, " (you)") : null), h("td", {}, select),
        h("td", {}, h("button", { type: "button", class: "quiet danger", "aria-label": `Remove ${m.email}`, onclick: () => remove(m.email) }, "Remove")));
    }));
  }
  const path = (email) => `members/${encodeURIComponent(email)}`;
  async function reload() { draw(await api("GET", "members")); }
  async function change(email, role, select, was) {
    status.textContent = "";
    try { await api("PUT", path(email), { role }); toast("Role changed."); await reload(); } catch (e) { select.value = was; status.textContent = errorText(e); }
  }
  async function remove(email) {
    status.textContent = "";
    if (!confirm(`Remove ${email} from this bot?`)) return;
    try { await api("DELETE", path(email)); toast("Removed."); await reload(); } catch (e) { status.textContent = errorText(e); }
  }
  const email = h("input", { id: "m-email", type: "email", required: true, autocomplete: "off" });
  const role = h("select", { id: "m-role" }, h("option", { value: "agent" }, "agent"), h("option", { value: "owner" }, "owner"));
  const error = h("p", { class: "error", role: "alert" });
  view.append(h("section", { class: "card" }, status, h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, h("span", { class: "sr" }, "Actions")))),
    tbody))),
  h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try { await api("POST", "members", { email: email.value, role: role.value }); e.target.reset(); await reload(); toast("Added."); } catch (err) { error.textContent = errorText(err); }
  } }, h("h2", {}, "Add a member"),
  h("p", { class: "muted" }, "Agents see every page but change nothing; owners change everything. The person needs an account first."),
  field("Email", email), field("Role", role), error, h("button", { type: "submit" }, "Add")));
  draw(await api("GET", "members"));
}
