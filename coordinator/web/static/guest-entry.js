// An invitation link carries its secret after '#', which the browser never sends to a server by itself:
// this page takes it off the address (so it stays out of the history too) and posts it. A link opened on
// this page already only changes the '#' part, without loading the page again: that counts too.
(function () {
  "use strict";
  function enter() {
    var secret = window.location.hash.replace(/^#/, "");
    if (!secret) return;
    history.replaceState(null, "", window.location.pathname);
    var form = document.getElementById("link-form");
    form.querySelector("input[name=secret]").value = decodeURIComponent(secret);
    form.submit();
  }
  document.addEventListener("DOMContentLoaded", enter);
  window.addEventListener("hashchange", enter);
})();
