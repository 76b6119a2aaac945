// The signed-in user: change the password (every other session is signed
// out by the server), sign out.
import { api, h, heading, session, toast, errorText, field } from "../lib.js";

export async function render(view) {
  const old = h("input", { id: "pw-old", type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { id: "pw-new", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = h("p", { class: "error", role: "alert" });
  view.append(heading("Account"), h("p", {}, `Signed in as ${session.user.email}.`),
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
    error, h("button", { type: "submit" }, "Change password")));
}
