// Forms with data-confirm="question" ask before they are sent (the pages' policy allows no inline handlers).
// Live refresh without a full reload: every element with data-refresh="URL" gets its inner HTML
// replaced by the server-rendered fragment at URL every data-every milliseconds (default 3000).
(function () {
  "use strict";
  function start(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var busy = false;
    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (response.redirected || response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== el.innerHTML) {
            el.innerHTML = html;
            el.setAttribute("data-refreshed", String(Date.now()));
          }
        })
        .catch(function () { el.classList.add("stale"); })
        .then(function () { busy = false; });
    }
    setInterval(tick, every);
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh]"), start);
  });
})();
