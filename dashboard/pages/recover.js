// Getting back in by mail: ask for a reset link (#/forgot), choose a new
// password with it (#/reset/<token>), confirm an address (#/verify/<token>).
// Tokens live in the URL's fragment, which the browser never sends to a
// server; the pages spend them with a POST.
import { api, h, errorText, field, session } from "../lib.js";

const back = () => h("p", { class: "small" }, h("a", { href: "#/signin" }, "Back to sign in"));

export function forgot(view) {
  const email = h("input", { id: "fp-email", type: "email", autocomplete: "email", required: true, maxlength: 254 });
  const error = h("p", { class: "error", role: "alert" });
  const status = h("p", { role: "status" });
  const button = h("button", { type: "submit" }, "Send me a link");
  view.append(h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    status.textContent = "";
    button.disabled = true;
    try {
      const answer = await api("POST", "auth/password-reset", { email: email.value }, { quiet401: true });
      status.textContent = answer.message;
    } catch (err) {
      error.textContent = err.status === 404
        ? "Password reset by mail is not set up here. Ask the platform's operator to reset your password."
        : errorText(err);
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", { tabindex: "-1" }, "Forgot your password?"),
  h("p", {}, "Write your account's email and we will send a link to choose a new password."),
  field("Email", email), error, status, button, back()));
}

export function reset(view, token) {
  const password = h("input", { id: "rp-password", type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 1024 });
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, "Set my new password");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await api("POST", "auth/password-reset/confirm", { token, new_password: password.value }, { quiet401: true });
      // Every session of the account is signed out, this browser's too.
      session.user = null;
      form.replaceChildren(h("h1", { tabindex: "-1" }, "Password changed"),
        h("p", { role: "status" }, "Your new password is set, and every other session is signed out."),
        h("p", {}, h("a", { href: "#/signin" }, "Sign in")));
      form.querySelector("h1").focus();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", { tabindex: "-1" }, "Choose a new password"),
  field("New password", password, "At least 8 characters. Signs out every session of your account."),
  error, button, back());
  view.append(form);
}

export async function verify(view, token) {
  const status = h("p", { role: "status" }, "Confirming your address…");
  const box = h("div", { class: "card narrow" }, h("h1", { tabindex: "-1" }, "Confirm your address"), status, back());
  view.append(box);
  try {
    await api("POST", "auth/verify-email", { token }, { quiet401: true });
    status.textContent = "Thank you: your address is confirmed.";
  } catch (err) {
    status.textContent = "";
    status.after(h("p", { class: "error", role: "alert" }, errorText(err)));
  }
}
