// The front page: the snippet with this server's address, and the live
// widget for the public tenant, or for ?client=SCHEMA.
(function () {
  "use strict";
  var wanted = new URLSearchParams(location.search).get("client") || "";
  var meta = document.querySelector('meta[name="chatter-public-tenant"]');
  var client = /^[a-z][a-z0-9_]{2,62}$/.test(wanted) ? wanted : meta.content;
  var src = location.origin + "/static/widget.js";
  document.getElementById("snippet").textContent =
    '<script src="' + src + '" data-client-id="' + (wanted ? client : "acme") + '" async></script>';
  if (wanted) document.getElementById("tenant").textContent = "the bot of “" + client + "”";
  var script = document.createElement("script");
  script.src = src;
  script.async = true;
  script.setAttribute("data-client-id", client);
  document.body.append(script);
})();
