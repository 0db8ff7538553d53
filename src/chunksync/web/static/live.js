// Live updates without a page reload: every element with data-live="<url>" is replaced by the
// server-rendered (and server-escaped) HTML fragment at that URL, every data-poll-ms on <body>.
// Skipped while the tab is hidden, for a fragment that holds the focused control, and for one
// with a ticked box (a selection for a bulk action is not wiped by a refresh).
(function () {
  "use strict";
  var ms = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 2000;
  function refresh() {
    if (document.hidden) { return; }
    var live = document.querySelectorAll("[data-live]");
    Array.prototype.forEach.call(live, function (el) {
      var focused = document.activeElement;
      if (focused && focused !== document.body && el.contains(focused)) { return; }
      if (el.querySelector("input[type=checkbox]:checked")) { return; }
      fetch(el.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          if (el.querySelector("input[type=checkbox]:checked")) { return; }  // ticked meanwhile
          el.innerHTML = html;
          document.body.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () { document.body.setAttribute("data-offline", "1"); });
    });
  }
  setInterval(refresh, ms);
})();
