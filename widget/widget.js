/*! Chatter visitor widget. One line on a site:
 *  <script src="https://HOST/static/widget.js" data-client-id="acme" async></script>
 * Plain JS, no dependencies. Lives in a Shadow DOM; fetches nothing (not
 * even its CSS) until the visitor opens it. */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[src*="/static/widget.js"][data-client-id]');
  if (!script || window.__chatterWidget) return;
  window.__chatterWidget = true;

  var clientId = script.getAttribute("data-client-id") || "";
  // The dashboard's live preview (/app/preview.html, framed by the Widget
  // page): the settings come from the framing page, unsaved; nothing is
  // fetched, stored or sent.
  var preview = script.hasAttribute("data-preview") && window.parent !== window;
  var api = new URL("../api/", script.src).href;
  var cssUrl = new URL("widget.css", script.src).href;
  var key = "chatter:" + clientId + ":";

  function store(name, value) {
    if (preview) return;
    try {
      if (value == null) localStorage.removeItem(key + name);
      else localStorage.setItem(key + name, value);
    } catch (e) { /* storage disabled: the session lasts as long as the page */ }
  }
  function stored(name) {
    if (preview) return null;
    try { return localStorage.getItem(key + name); } catch (e) { return null; }
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  var session = stored("session");
  var config = null;
  try { config = JSON.parse(stored("config") || "null"); } catch (e) { config = null; }

  // The launcher is all that exists before the visitor opens the chat; its
  // few rules are inline so nothing else loads.
  var host = el("div", { id: "chatter-widget" });
  var root = host.attachShadow({ mode: "open" });
  var baseCss = (":host{all:initial;position:fixed;bottom:16px;right:16px;z-index:2147483000;" +
    "font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111}" +
    ":host(.left){right:auto;left:16px}" +
    ".launch{width:56px;height:56px;border:0;border-radius:50%;background:var(--c,#2563eb);color:var(--t,#fff);" +
    "cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center;padding:0}" +
    ".launch svg{width:28px;height:28px;fill:currentColor}.panel[hidden]{display:none}");
  // A constructed style sheet where the browser has them: a page whose
  // Content-Security-Policy forbids inline <style> (the dashboard's own
  // preview, strict sites) still styles the launcher.
  var base = null;
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(baseCss);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    base = el("style", {}, baseCss);
  }
  var launch = el("button", { class: "launch", type: "button", "aria-label": "Open chat", "aria-expanded": "false" });
  launch.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>';
  if (base) root.append(base);
  root.append(launch);
  theme(config);

  var panel, log, status, input, send, form, typing, suggestions, greet, brand;
  var built = false, ready = null, blocked = false, busy = false, retryTimer = 0;

  function theme(cfg) {
    var t = (cfg && cfg.theme) || {};
    var color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(t.color || "") ? t.color : "#2563eb";
    host.style.setProperty("--c", color);
    host.style.setProperty("--t", dark(color) ? "#fff" : "#111");
    host.className = t.position === "left" ? "left" : "";
  }
  // White text on dark colours, black on light ones.
  function dark(hex) {
    var h = hex.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    var n = parseInt(h, 16);
    var y = 0.2126 * (n >> 16 & 255) + 0.7152 * (n >> 8 & 255) + 0.0722 * (n & 255);
    return y < 160;
  }

  function build() {
    built = true;
    root.append(el("link", { rel: "stylesheet", href: cssUrl }));
    panel = el("section", { class: "panel", role: "dialog", "aria-label": "Chat" });
    var head = el("header");
    var title = el("h2", { class: "title" }, (config && config.bot_name) || "Chat");
    var close = el("button", { class: "close", type: "button", "aria-label": "Close chat" }, "\u00d7");
    close.onclick = function () { toggle(false); };
    head.append(title, close);
    log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    // The greeting's place is first, whatever the visitor types before the
    // config arrives; a cached greeting shows at once.
    greet = el("div", { class: "msg bot" });
    greet.hidden = true;
    log.append(greet);
    if (config && config.greeting) greeting(config.greeting);
    typing = el("div", { class: "msg bot typing", "aria-label": "typing" });
    typing.append(el("span"), el("span"), el("span"));
    suggestions = el("div", { class: "suggest" });
    status = el("p", { class: "status", role: "status" });
    form = el("form", { class: "form" });
    input = el("input", { type: "text", "aria-label": "Message", placeholder: "Type your question\u2026",
      maxlength: "2000", autocomplete: "off" });
    send = el("button", { type: "submit", class: "send" }, "Send");
    form.append(input, send);
    form.onsubmit = function (e) {
      e.preventDefault();
      var text = input.value.trim();
      if (text && !busy && !blocked) { input.value = ""; ask(text); }
    };
    // "Powered by Chatter", unless the owner's plan lets them hide it and
    // they did (the server decides: `branding` in the config).
    brand = el("p", { class: "brand" }, "Powered by Chatter");
    branding(config);
    panel.append(head, log, suggestions, status, form, brand);
    panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { toggle(false); launch.focus(); }
    });
    root.append(panel);
    window.addEventListener("online", function () { if (!blocked) say(""); });
    window.addEventListener("offline", function () { say("You're offline. Messages will send when you're back online."); });
  }

  // `restoring`: reopened by a page load, not by the visitor, so the page
  // keeps its focus.
  function toggle(open, restoring) {
    if (open && !built) build();
    if (panel) panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    launch.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    store("open", open ? "1" : null);
    if (open) {
      if (!ready) ready = start();
      if (!restoring) input.focus();
    }
  }
  launch.onclick = function () { toggle(launch.getAttribute("aria-expanded") !== "true"); };

  // A line under the transcript: a problem, or (`info`) a plain notice.
  function say(text, info) {
    status.textContent = text;
    status.hidden = !text;
    status.className = "status" + (info ? " info" : "");
  }

  // A request to the API: resolves to {status, body, retry}; a network
  // failure resolves with status 0.
  function call(method, path, body) {
    var init = { method: method, headers: { "X-Client-ID": clientId } };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(api + path, init).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        return { status: res.status, body: json, retry: parseInt(res.headers.get("Retry-After"), 10) || 0 };
      });
    }, function () { return { status: 0, body: null, retry: 0 }; });
  }

  // The failure states a visitor can see. Returns true when the chat cannot go on.
  function failed(res) {
    var code = res.body && res.body.error && res.body.error.code;
    if (res.status === 403 && code === "origin_not_allowed") {
      return block("This chat is not enabled for this website.");
    }
    if (res.status === 404 && code === "unknown_tenant") return block("This chat is not available.");
    // The bot's plan is used up or lapsed: the owner's own words.
    if (code === "chat_unavailable") return block(res.body.error.message);
    if (res.status === 0) {
      say(navigator.onLine === false
        ? "You're offline. Messages will send when you're back online."
        : "Can't reach the chat right now. Check your connection; if it persists, the chat may not be enabled for this website.");
    } else if (res.status === 429) {
      say("You're sending messages too quickly. Retrying in " + wait(res) + " s\u2026");
    } else if (res.status === 503) {
      say("The assistant is busy or starting up. Retrying in " + wait(res) + " s\u2026");
    } else {
      say((res.body && res.body.error && res.body.error.message) || "Something went wrong. Please try again.");
    }
    return false;
  }
  function wait(res) { return Math.max(1, res.retry || 5); }
  function block(text) {
    blocked = true;
    say(text);
    input.disabled = send.disabled = true;
    return true;
  }

  function start() {
    if (preview) return Promise.resolve(true);
    return call("GET", "widget/config").then(function (res) {
      if (res.status !== 200) {
        var stop = failed(res);
        if (!stop) ready = null; // try again on the next message
        return stop;
      }
      config = res.body;
      if (config.chat_open === false) return block(config.unavailable_reply || "This chat is not available.");
      store("config", JSON.stringify({ bot_name: config.bot_name, theme: config.theme, greeting: config.greeting,
        branding: config.branding }));
      theme(config);
      branding(config);
      panel.querySelector(".title").textContent = config.bot_name;
      greeting(config.greeting);
      if (!session) return;
      return call("GET", "chat/history?session_id=" + encodeURIComponent(session)).then(function (h) {
        if (h.status === 200) {
          h.body.messages.forEach(function (m) { bubble(m.role, m.text, m); });
        } else if (h.status === 404 || h.status === 400) {
          session = null;
          store("session", null);
        } else {
          failed(h);
        }
      });
    });
  }

  function branding(cfg) {
    brand.hidden = !!cfg && cfg.branding === false;
  }

  function greeting(text) {
    greet.textContent = "";
    greet.append(el("span", { class: "sr" }, "Assistant: "), document.createTextNode(text));
    greet.hidden = !text;
  }

  function bubble(role, text, message) {
    var node = el("div", { class: "msg " + role });
    node.append(el("span", { class: "sr" }, role === "bot" ? "Assistant: " : "You: "), document.createTextNode(text));
    if (role === "bot" && message && message.id) node.append(thumbs(message));
    log.append(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  // A thumb drawn as SVG: emoji need a font a plain Linux desktop lacks.
  var THUMB = "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z";
  function thumb(up) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    if (!up) svg.setAttribute("transform", "rotate(180)");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", THUMB);
    svg.append(path);
    return svg;
  }

  function thumbs(message) {
    var box = el("span", { class: "rate" });
    [[true, "Helpful"], [false, "Not helpful"]].forEach(function (t) {
      var b = el("button", { type: "button", "aria-label": t[1], "aria-pressed": String(message.helpful === t[0]) });
      b.append(thumb(t[0]));
      b.onclick = function () {
        call("POST", "chat/feedback", { session_id: session, message_id: message.id, helpful: t[0] }).then(function (res) {
          if (res.status !== 204) return failed(res);
          message.helpful = t[0];
          box.querySelectorAll("button").forEach(function (x, i) { x.setAttribute("aria-pressed", String(i === (t[0] ? 0 : 1))); });
          say("Thanks for your feedback.", true);
        });
      };
      box.append(b);
    });
    return box;
  }

  // A pick among clarify choices shows the chosen question but sends the
  // visitor's own words with the FAQ's id: the bot learns them as a phrasing.
  function ask(text, pick) {
    if (ready == null) ready = start();
    suggestions.textContent = "";
    bubble("visitor", text);
    busy = true;
    send.disabled = true;
    ready.then(function (stop) { return stop ? null : post(text, 0, pick); });
  }

  function post(text, attempt, pick) {
    say("");
    log.append(typing);
    log.scrollTop = log.scrollHeight;
    var body = pick ? { message: pick.message, faq_id: pick.faq_id } : { message: text };
    if (session) body.session_id = session;
    return call("POST", "chat", body).then(function (res) {
      typing.remove();
      if (res.status === 200) {
        done();
        session = res.body.session_id;
        store("session", session);
        bubble("bot", res.body.reply, { id: res.body.message_id });
        var choices = res.body.choices || [];
        if (choices.length) {
          // Choices are FAQs: a named group of buttons, each named by its question.
          suggestions.setAttribute("role", "group");
          suggestions.setAttribute("aria-label", "Did you mean");
          var asked = pick ? pick.message : text;
          choices.forEach(function (c) {
            var b = el("button", { type: "button", "data-faq-id": String(c.faq_id) }, c.question);
            b.onclick = function () {
              if (!busy && !blocked) ask(c.question, { message: asked, faq_id: c.faq_id });
            };
            suggestions.append(b);
          });
        } else {
          res.body.suggestions.forEach(function (q) {
            var b = el("button", { type: "button" }, q);
            b.onclick = function () { if (!busy && !blocked) ask(q); };
            suggestions.append(b);
          });
        }
        return;
      }
      if (failed(res)) return done();
      var again = function () { post(text, attempt + 1, pick); };
      if (res.status === 0 && navigator.onLine === false) {
        window.addEventListener("online", again, { once: true });
      } else if ((res.status === 429 || res.status === 503 || res.status === 0) && attempt < 3) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(again, wait(res) * 1000);
      } else {
        done();
        input.value = input.value || text;
      }
    });
  }
  function done() { busy = false; send.disabled = blocked; }

  function mount() {
    document.body.append(host);
    if (preview) return showPreview();
    if (stored("open")) toggle(true, true);
  }

  // The preview: open, with a sample exchange, redrawn with each message
  // of settings from the framing page (same origin only).
  function showPreview() {
    toggle(true, true);
    input.disabled = send.disabled = true;
    input.placeholder = "Preview: try questions on the FAQs page";
    bubble("visitor", "When are you open?");
    bubble("bot", "Your FAQ's answer appears here.");
    window.addEventListener("message", function (e) {
      if (e.source !== window.parent || e.origin !== location.origin || !e.data || typeof e.data !== "object") return;
      config = { bot_name: String(e.data.bot_name || "Chat"), greeting: String(e.data.greeting || ""), theme: e.data.theme || {},
        branding: e.data.branding !== false };
      theme(config);
      branding(config);
      panel.querySelector(".title").textContent = config.bot_name;
      greeting(config.greeting);
    });
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
