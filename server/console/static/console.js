// The live part of a run page: fetched again every few seconds while the run goes,
// then the whole page once it has ended (to show the equity audit and the links).
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live || live.dataset.status !== "running") return;
  const every = 1000 * Number(live.dataset.every || 2);
  async function refresh() {
    try {
      const response = await fetch(live.dataset.src, {cache: "no-store"});
      if (response.ok) {
        live.innerHTML = await response.text();
        const status = response.headers.get("X-Run-Status");
        if (status && status !== "running") {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // The console restarted or the network blinked: try again at the next tick.
    }
    window.setTimeout(refresh, every);
  }
  window.setTimeout(refresh, every);
})();
