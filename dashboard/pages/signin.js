import { api, h, errorText } from "../lib.js";

export function render(view, done) {
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await api("POST", "auth/session", { email: email.value, password: password.value }, { quiet401: true });
      await done();
    } catch (err) {
      error.textContent = err.status === 401 ? "Wrong email or password." : errorText(err);
      password.select();
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", { tabindex: "-1" }, "Sign in to Chatter"),
  h("div", { class: "field" }, h("label", { for: "email" }, "Email"), email),
  h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
  error, button);
  const more = h("p", { class: "small links" });
  view.append(form);
  form.append(more);
  // What this server offers the signed-out: a link to each.
  api("GET", "auth/options", undefined, { quiet401: true }).then((o) => {
    const links = [];
    if (o.password_reset) links.push(h("a", { href: "#/forgot" }, "Forgot password?"));
    else links.push(h("span", { class: "muted" }, "Forgot your password? Ask the platform's operator."));
    if (o.signup) links.push(h("a", { href: "#/signup" }, "Create an account"));
    more.replaceChildren(...links);
  }).catch(() => { /* the form works without them */ });
}
