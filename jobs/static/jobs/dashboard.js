// The admin dashboard's live part, refreshed in place (jobs.admin.dashboard): every few seconds, and at once
// when another throughput range is chosen, it fetches the page's own fragment (?fragment=1) and swaps it in.
// A static file, not an inline script: the admin's Content-Security-Policy allows only 'self' scripts.
(function () {
  "use strict";
  const live = document.getElementById("dashboard-live");
  if (!live) return;
  const seconds = Math.max(2, parseInt(live.dataset.refreshSeconds, 10) || 5);
  let timer = null;
  let inFlight = null;

  function fragmentUrl() {
    const params = new URLSearchParams(window.location.search);
    params.set("fragment", "1");
    return window.location.pathname + "?" + params.toString();
  }

  function markStale(reason) {
    const status = document.getElementById("dashboard-status");
    if (status) {
      status.classList.add("dash-stale");
      status.textContent = "Not refreshed since " + status.textContent.replace(/^As of /, "").split(" ·")[0] + ": " + reason + "; retrying";
    }
  }

  function refresh() {
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    fetch(fragmentUrl(), { credentials: "same-origin", headers: { Accept: "text/html" }, signal: controller.signal })
      .then(function (response) {
        // A lapsed session answers with the login page: say so rather than show it inside the dashboard.
        if (!response.ok || response.redirected) throw new Error(response.redirected ? "logged out" : "HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        live.dataset.refreshedAt = new Date().toISOString();
        live.dispatchEvent(new CustomEvent("dashboard:refreshed"));
      })
      .catch(function (error) {
        if (error.name !== "AbortError") markStale(error.message || "the server did not answer");
      })
      .finally(function () {
        if (inFlight === controller) inFlight = null;
      });
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(function () {
      if (!document.hidden) refresh();
    }, seconds * 1000);
  }

  // Choosing a range: the address keeps it (reload and share), the figures follow without a reload.
  live.addEventListener("click", function (event) {
    const link = event.target.closest("a[data-range]");
    if (!link) return;
    event.preventDefault();
    const params = new URLSearchParams(window.location.search);
    params.set("range", link.dataset.range);
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
    refresh();
    schedule();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
  schedule();
})();
