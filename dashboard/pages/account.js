// The signed-in user: change the password (every other session is signed
// out by the server), and sign out everywhere (every token and browser
// session of the user, this one too).
import { api, h, heading, session, toast, errorText, field } from "../lib.js";

export async function render(view) {
  const old = h("input", { id: "pw-old", type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { id: "pw-new", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = h("p", { class: "error", role: "alert" });
  const everywhereError = h("p", { class: "error", role: "alert" });
  // An address not confirmed yet: a new link on request (when mail is set up).
  const unconfirmed = h("div");
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
      unconfirmed.replaceChildren(h("p", { class: "note" }, "Your email address is not confirmed yet. ", send), status);
    }).catch(() => { /* the page works without it */ });
  }
  view.append(heading("Account"), h("p", {}, `Signed in as ${session.user.email}.`), unconfirmed,
    h("form", { class: "card narrow", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        // A 401 here means the session died: lib.js sends the browser to sign in.
        await api("POST", "auth/password/change", { old_password: old.value, new_password: next.value });
        e.target.reset();
        toast("Password changed. Your other sessions are signed out.");
      } catch (err) { error.textContent = err.code === "wrong_password" ? "The current password is wrong." : errorText(err); }
    } }, h("h2", {}, "Change password"), field("Current password", old), field("New password", next, "At least 8 characters. Signs out your other sessions."),
    error, h("button", { type: "submit" }, "Change password")),
    h("section", { class: "card narrow" }, h("h2", {}, "Sign out everywhere"),
      h("p", { class: "muted" }, "Ends every session of your account: other browsers, other devices, API tokens, and this browser."),
      everywhereError,
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm("Sign out of every browser and device, this one too?")) return;
        everywhereError.textContent = "";
        try {
          await api("DELETE", "auth/sessions");
          session.user = null;
          document.getElementById("top").hidden = true;
          location.hash = "#/signin";
        } catch (err) { everywhereError.textContent = errorText(err); }
      } }, "Sign out everywhere")));
}
