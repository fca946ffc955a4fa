// Progressive enhancement: refresh the status of pending objects without a reload.
// Every page works without this script; it only polls /status while something is pending,
// and reloads a task's page while the task runs.
(function () {
  "use strict";
  function pending() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-poll]"));
  }
  function poll() {
    var els = pending();
    if (!els.length) { return; }
    var q = els.map(function (el) { return "o=" + encodeURIComponent(el.dataset.poll); }).join("&");
    fetch("/status?" + q, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (data) {
        els.forEach(function (el) {
          var s = data[el.dataset.poll];
          if (!s) { return; }
          el.textContent = s.text;
          el.className = "status status-" + s.status;
          if (s.status !== "pending" && s.status !== "deleting") {
            if (s.reason) {
              var span = document.createElement("span");
              span.className = "reason";
              span.textContent = s.reason;
              el.parentNode.appendChild(span);
            }
            el.removeAttribute("data-poll");
          }
        });
      })
      .catch(function () {})
      .then(function () { if (pending().length) { setTimeout(poll, 2000); } });
  }
  // A page about work under way (a task's page) marks itself data-refresh="<seconds>" and
  // is reloaded until the work ends, when the server leaves the mark out.
  function refresh() {
    var el = document.querySelector("[data-refresh]");
    if (el) {
      var seconds = parseInt(el.dataset.refresh, 10) || 3;
      setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 1000); refresh(); });
})();
