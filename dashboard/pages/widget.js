// The widget's settings (owners change them; agents read), the install
// snippet with a copy button, and a live preview: the real widget in a
// frame, redrawn with the form's unsaved name, greeting, colour and position.
import { api, h, heading, session, toast, errorText, field, readOnlyNote } from "../lib.js";

export async function render(view) {
  const [c, billing] = await Promise.all([api("GET", "bot/config"), api("GET", "billing").catch(() => null)]);
  // Self-hosted (no billing) or a plan that allows it: the owner may hide
  // "Powered by Chatter". Otherwise the box stays ticked and is not sent.
  const removable = !billing || billing.status.limits.remove_branding;
  const theme = c.theme || {};
  const name = h("input", { id: "w-name", value: c.bot_name, maxlength: 100 });
  const greeting = h("textarea", { id: "w-greeting", rows: 2 }, c.greeting);
  const fallback = h("textarea", { id: "w-fallback", rows: 2 }, c.fallback_reply);
  const unavailable = h("textarea", { id: "w-unavailable", rows: 2 }, c.unavailable_reply);
  const color = h("input", { id: "w-color", type: "color", value: /^#[0-9a-f]{6}$/i.test(theme.color || "") ? theme.color : "#2563eb" });
  const position = h("select", { id: "w-position" }, ["right", "left"].map((p) => h("option", { value: p, selected: (theme.position || "right") === p }, p === "right" ? "Bottom right" : "Bottom left")));
  const threshold = h("input", { id: "w-threshold", type: "number", min: 0, max: 1, step: 0.01, value: c.match_threshold });
  const origins = h("textarea", { id: "w-origins", rows: 3 }, c.allowed_origins.join("\n"));
  const branding = h("input", { id: "w-branding", type: "checkbox", checked: c.show_branding || !removable, disabled: !removable });
  const error = h("p", { class: "error", role: "alert" });

  // The real widget (/static/widget.js) in a frame of our own, in preview
  // mode: it shows the form's values as they are typed, before saving.
  const preview = h("iframe", { class: "preview", src: "preview.html", title: "Preview of the widget on a page of your site" });
  function drawPreview() {
    preview.contentWindow?.postMessage({
      bot_name: name.value, greeting: greeting.value, theme: { ...theme, color: color.value, position: position.value },
      branding: branding.checked,
    }, location.origin);
  }
  for (const el of [name, greeting, color, position, branding]) {
    el.addEventListener("input", drawPreview);
    el.addEventListener("change", drawPreview);
  }
  preview.addEventListener("load", drawPreview);

  const fields = h("fieldset", { disabled: !session.canEdit }, h("legend", { class: "sr" }, "Settings"),
    field("Bot name", name), field("Greeting", greeting), field("Reply when no FAQ matches", fallback),
    field("Message when chat is unavailable", unavailable, "Shown to visitors when this month's conversations are used up or the plan has lapsed."),
    field("Colour", color), field("Position", position),
    field("Show \u201cPowered by Chatter\u201d", branding, removable
      ? "A small line under the chat box."
      : "Your plan keeps it. Plans that let you remove it are on the Billing page."),
    field("Match threshold", threshold, "0 to 1. Higher: fewer but surer answers."),
    field("Allowed origins", origins, "One a line, e.g. https://www.example.com. Empty: any site may use the widget."));
  const form = h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await api("PUT", "bot/config", {
        bot_name: name.value, greeting: greeting.value, fallback_reply: fallback.value,
        unavailable_reply: unavailable.value,
        match_threshold: Number(threshold.value),
        theme: { ...theme, color: color.value, position: position.value },
        allowed_origins: origins.value.split("\n").map((s) => s.trim()).filter(Boolean),
        ...(removable ? { show_branding: branding.checked } : {}),
      });
      toast("Saved. The widget uses it now.");
    } catch (err) { error.textContent = errorText(err); }
  } }, h("h2", {}, "Settings"), fields, error, session.canEdit ? h("button", { type: "submit" }, "Save") : null);

  const snippet = `<script src="${location.origin}/static/widget.js" data-client-id="${session.tenant}" async></script>`;
  const code = h("pre", { class: "snippet" }, h("code", { id: "snippet" }, snippet));
  const install = h("section", { class: "card" }, h("h2", {}, "Install"),
    h("p", {}, "Paste this line before </body> on every page of your site:"), code,
    h("button", { type: "button", onclick: async () => {
      try { await navigator.clipboard.writeText(snippet); toast("Copied."); } catch {
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        toast("Press Ctrl+C to copy the selected snippet.");
      }
    } }, "Copy snippet"));

  view.append(heading("Widget"), readOnlyNote(), h("div", { class: "split" }, form,
    h("section", { class: "card" }, h("h2", {}, "Preview"), preview)), install);
}
