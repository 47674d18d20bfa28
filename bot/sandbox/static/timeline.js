// Refreshes the public timeline every few seconds while the box is ticked. The fragment is HTML rendered (and
// escaped) by the server; nothing else is fetched.
(function () {
  "use strict";
  var box = document.getElementById("auto-refresh");
  var threads = document.getElementById("threads");
  if (!box || !threads) { return; }
  function refresh() {
    if (!box.checked) { return; }
    fetch("/timeline", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { threads.innerHTML = html; } })
      .catch(function () { /* the sandbox is restarting: try again on the next tick */ });
  }
  window.setInterval(refresh, 3000);
})();
