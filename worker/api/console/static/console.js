// Live progress of running cycles: poll the console's JSON every two seconds and update the
// progress bars in place. When a cycle ends, reload the page for its results.
(function () {
  "use strict";
  var bars = document.querySelectorAll("[data-progress-job]");
  if (!bars.length) return;
  var running = {};
  bars.forEach(function (bar) { running[bar.dataset.progressJob] = !bar.hidden; });

  function update(bar, p) {
    bar.querySelectorAll(".phases li").forEach(function (li, i) {
      li.className = i < p.phaseIndex ? "done" : i === p.phaseIndex ? "now" : "";
    });
    bar.querySelector(".progress-text").textContent = p.text;
    var meter = bar.querySelector("progress");
    if (p.planned) { meter.max = p.planned; meter.value = p.exported; }
    else { meter.removeAttribute("value"); }
    bar.hidden = false;
  }

  function poll() {
    fetch("/console/progress.json", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        data.jobs.forEach(function (job) {
          var bar = document.querySelector('[data-progress-job="' + CSS.escape(job.job) + '"]');
          document.querySelectorAll('[data-running-job="' + CSS.escape(job.job) + '"]')
            .forEach(function (badge) { badge.hidden = !job.running; });
          if (!bar) return;
          if (job.progress) { update(bar, job.progress); running[job.job] = true; }
          else if (running[job.job]) { window.location.reload(); }
        });
      })
      .catch(function () { /* the service restarting: try again at the next tick */ })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
