// The router: #/runs, #/run/ID, #/lineage/ID, #/program/ID, #/compare/programs/A/B, #/compare/runs/A/B,
// #/fleet.
import { api, setToken, token } from "./api.js";
import { esc, showError } from "./dom.js";
import { comparePrograms, compareRuns } from "./compare.js";
import { fleetPage } from "./fleet.js";
import { lineagePage } from "./lineage.js";
import { programPage } from "./program.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

const routes = [
  [/^#\/runs$/, () => runsPage()],
  [/^#\/run\/(\d+)$/, (m) => runPage(+m[1])],
  [/^#\/lineage\/(\d+)$/, (m) => lineagePage(+m[1])],
  [/^#\/program\/(\d+)$/, (m) => programPage(+m[1])],
  [/^#\/compare\/programs(?:\/(\d+)\/(\d+))?$/, (m) => comparePrograms(m[1], m[2])],
  [/^#\/compare\/runs(?:\/(\d+)\/(\d+))?$/, (m) => compareRuns(m[1], m[2])],
  [/^#\/fleet$/, () => fleetPage()],
];

let cleanup = null;

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || "#/runs";
  if (!token()) {
    showError(new Error("Enter an API token above (create one with `evoforge tokens create`)."));
    return;
  }
  for (const [pattern, page] of routes) {
    const m = hash.match(pattern);
    if (m) {
      try {
        cleanup = (await page(m)) || null;
      } catch (err) {
        showError(err);
      }
      return;
    }
  }
  showError(new Error(`No page at ${hash}; go to #/runs`));
}

async function who() {
  const el = document.getElementById("token-who");
  if (!token()) return;
  try {
    const me = await api("/me");
    el.textContent = `${me.name} (${me.scope})`;
    document.body.dataset.scope = me.scope;
  } catch (err) {
    el.innerHTML = `<span class="error">${esc(err.message)}</span>`;
  }
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken(document.getElementById("token-input").value);
  document.getElementById("token-input").value = "";
  who().then(route);
});
window.addEventListener("hashchange", route);
who().then(route);
