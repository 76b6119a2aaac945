// Sign-up (when the server allows it): a business names itself and its
// bot's client id, and its owner's email and password; the server makes
// the tenant and the account and signs the browser in.
import { api, h, errorText, field } from "../lib.js";

/** A client id from a business name: what the server accepts (`^[a-z][a-z0-9_]{2,62}$`). */
export function slugFrom(name) {
  let s = name.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 63);
  if (s && !/^[a-z]/.test(s)) s = ("bot_" + s).slice(0, 63);
  return s.length >= 3 ? s : s ? (s + "_bot").slice(0, 63) : "";
}

export function render(view, done) {
  const name = h("input", { id: "su-name", autocomplete: "organization", required: true, maxlength: 200 });
  const slug = h("input", { id: "su-slug", required: true, maxlength: 63, pattern: "[a-z][a-z0-9_]{2,62}", spellcheck: "false", autocapitalize: "none" });
  const email = h("input", { id: "su-email", type: "email", autocomplete: "email", required: true, maxlength: 254 });
  const password = h("input", { id: "su-password", type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 1024 });
  const controls = { business_name: name, slug, email, password };
  let slugEdited = false;
  name.addEventListener("input", () => { if (!slugEdited) slug.value = slugFrom(name.value); });
  slug.addEventListener("input", () => { slugEdited = slug.value !== ""; });
  const error = h("p", { class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, "Create my account");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    for (const c of Object.values(controls)) c.removeAttribute("aria-invalid");
    button.disabled = true;
    try {
      const made = await api("POST", "signup", {
        business_name: name.value, slug: slug.value, email: email.value, password: password.value,
      }, { quiet401: true });
      try { localStorage.setItem("chatter:dashboard:tenant", made.tenant); } catch { /* private mode */ }
      await done(made);
    } catch (err) {
      // The server's message starts with the field it is about.
      const [fieldName] = (err.message || "").split(":", 1);
      const control = controls[fieldName];
      error.textContent = err.status === 429 ? `Too many sign-ups just now. ${errorText(err)}` : errorText(err);
      if (control) { control.setAttribute("aria-invalid", "true"); control.focus(); }
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", { tabindex: "-1" }, "Create your Chatter account"),
  field("Business name", name),
  field("Client id", slug, "Lowercase letters, digits and _, 3 to 63 characters, starting with a letter. Your website's widget names your bot by it."),
  field("Email", email),
  field("Password", password, "At least 8 characters."),
  error, button,
  h("p", { class: "small" }, "Have an account? ", h("a", { href: "#/signin" }, "Sign in")));
  view.append(form);
}
