// The signed-in user: change the password (every other session is signed
// out by the server), sign out.
import { api, h, heading, session, toast, errorText, field } from "../lib.js";

export async function render(view) {
  const old = h("input", { id: "pw-old", type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { id: "pw-new", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = h("p", { class: "error", role: "alert" });
  // An address not confirmed yet: a new link on request (when mail is set up).
  const confirm = h("div");
  if (!session.user.email_verified) {
    api("GET", "auth/options").then((o) => {
      if (!o.password_reset) return;
      const status = h("p", { role: "status" });
      const send = h("button", { type: "button", class: "quiet", onclick: async () => {
        send.disabled = true;
        try {
          const r = await api("POST", "auth/verify-email/resend");
          status.textContent = r.sent ? "A new link is on its way to your mailbox." : "Your address is confirmed already.";
        } catch (err) { status.textContent = errorText(err); } finally { send.disabled = false; }
      } }, "Send me a link to confirm it");
      confirm.replaceChildren(h("p", { class: "note" }, "Your email address is not confirmed yet. ", send), status);
    }).catch(() => { /* the page works without it */ });
  }
  view.append(heading("Account"), h("p", {}, `Signed in as ${session.user.email}.`), confirm,
    h("form", { class: "card narrow", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        await api("POST", "auth/password/change", { old_password: old.value, new_password: next.value }, { quiet401: true });
        e.target.reset();
        toast("Password changed. Your other sessions are signed out.");
      } catch (err) { error.textContent = err.status === 401 ? "The current password is wrong." : errorText(err); }
    } }, h("h2", {}, "Change password"), field("Current password", old), field("New password", next, "At least 8 characters. Signs out your other sessions."),
    error, h("button", { type: "submit" }, "Change password")));
}
