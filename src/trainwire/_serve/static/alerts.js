// A notice at the top of the page while a webhook does not accept its alerts: the
// /api/alerts webhooks with alerts waiting and a last error. Text only (textContent).
(function () {
  "use strict";
  var box = null;

  function line(hook) {
    return "Alerts to " + hook.url + " are not getting through (" + hook.pending +
      " waiting, " + hook.attempts + " failed attempts): " + hook.last_error;
  }

  function show(failing) {
    if (!failing.length) {
      if (box) { box.remove(); box = null; }
      return;
    }
    if (!box) {
      box = document.createElement("p");
      box.id = "alerts-notice";
      box.className = "error-box";
      var main = document.querySelector("main");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = failing.map(line).join("\n");
  }

  async function check() {
    try {
      var resp = await fetch("/api/alerts", { headers: { Accept: "application/json" } });
      if (resp.ok) {
        var data = await resp.json();
        show(data.webhooks.filter(function (h) { return h.pending > 0 && h.last_error; }));
      }
    } catch (e) {
      // the server is restarting: the next look tells
    }
  }

  check();
  setInterval(check, 5000);
})();
