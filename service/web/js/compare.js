// Compare two programs (side-by-side diff, per file for folders) or two runs (their best-score curves on one chart).
import { api } from "./api.js";
import { esc, num, setApp } from "./dom.js";
import { stepChart } from "./charts.js";
import { diffHtml, fileDiffsHtml } from "./files.js";

function pickForm(kind, a, b) {
  return `<form id="pick" class="pick">${kind} <input name="a" type="number" min="1" value="${a || ""}" required>
    and <input name="b" type="number" min="1" value="${b || ""}" required> <button>compare</button></form>`;
}

function wire(kind) {
  document.getElementById("pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    location.hash = `#/compare/${kind}/${f.get("a")}/${f.get("b")}`;
  });
}

export async function comparePrograms(a, b) {
  setApp(`<h1>Compare programs</h1>${pickForm("Programs", a, b)}<div id="out"></div>`);
  wire("programs");
  if (!a || !b) return;
  const res = await api(`/ui/programs/${a}/compare/${b}`);
  document.getElementById("out").innerHTML = `<p><a href="#/program/${a}">#${a}</a> (score ${num(res.score_a)})
    → <a href="#/program/${b}">#${b}</a> (score ${num(res.score_b)})</p>
    <div data-testid="diff">${res.files.length === 1 && res.files[0].path === "program.py"
    ? diffHtml(res.diff, "side-by-side") : fileDiffsHtml(res.files, "side-by-side")}</div>`;
}

export async function compareRuns(a, b) {
  setApp(`<h1>Compare runs</h1>${pickForm("Runs", a, b)}<div id="chart" data-testid="chart"></div><div id="out"></div>`);
  wire("runs");
  if (!a || !b) return;
  const [ta, tb, ra, rb] = await Promise.all([api(`/runs/${a}/timeline`), api(`/runs/${b}/timeline`),
    api(`/runs/${a}`), api(`/runs/${b}`)]);
  const pts = (t) => t.overall.map((p) => ({ x: p.iteration, y: p.score, program_id: p.program_id }));
  stepChart(document.getElementById("chart"), [
    { name: `run ${a}`, cls: "run-a", width: 2, points: pts(ta) },
    { name: `run ${b}`, cls: "run-b", width: 2, points: pts(tb) }]);
  document.getElementById("out").innerHTML = [ra, rb].map((r) => `<p><a href="#/run/${r.id}">run ${r.id}</a>:
    ${esc(r.status)}, ${r.iterations} iterations, best ${num(r.best_score)}</p>`).join("");
}
