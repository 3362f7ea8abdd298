// A run: best score over time (overall and per island), MAP-Elites heatmaps, islands, outcome
// counts; live while the run is active (server-sent events).
import { api, events } from "./api.js";
import { esc, num, progLink, setApp, when } from "./dom.js";
import { heatmap, stepChart } from "./charts.js";

const ACTIVE = ["created", "queued", "running"];

function points(list) {
  return list.map((p) => ({ x: p.iteration, y: p.score, program_id: p.program_id }));
}

export function timelineSeries(timeline, label = "overall") {
  const islands = Object.entries(timeline.islands).map(([i, list]) => ({
    name: `island ${i}`, cls: "island", points: points(list),
  }));
  return [...islands, { name: label, cls: "overall", width: 2.5, colour: "#222", points: points(timeline.overall) }];
}

function summary(run) {
  return `<dl class="summary" data-testid="run-summary">
    <dt>Status</dt><dd data-testid="run-status">${esc(run.status)}${run.stop_reason ? ` (${esc(run.stop_reason)})` : ""}</dd>
    <dt>Iterations</dt><dd data-testid="run-iterations">${run.iterations} / ${run.budget_iterations ?? "∞"}</dd>
    <dt>Best</dt><dd>${num(run.best_score)} ${progLink(run.best_program_id)} (initial ${num(run.initial_score)})</dd>
    <dt>Evaluations</dt><dd>${run.evaluations} (${run.failed} failed)</dd>
    <dt>LLM</dt><dd>${run.llm_calls} calls, ${run.prompt_tokens} + ${run.completion_tokens} tokens</dd>
    <dt>Started</dt><dd>${when(run.started_at)}</dd><dt>Finished</dt><dd>${when(run.finished_at)}</dd></dl>`;
}

function outcomes(fail, usage) {
  const li = (o) => Object.entries(o).map(([k, n]) => `<li>${esc(k)}: <b>${n}</b></li>`).join("");
  const reported = fail.reported_errors || { count: 0 };
  const kinds = fail.kinds.map((k) => `<li>${esc(k.kind)}: <b>${k.count}</b>
    <span class="muted" title="${esc(k.example)}">${esc((k.example || "").slice(0, 80))}</span></li>`).join("")
    + (reported.count ? `<li data-testid="reported-errors">scored, but the evaluator reported an error:
    <b>${reported.count}</b> <span class="muted" title="${esc(reported.example)}">${esc((reported.example || "").slice(0, 80))}</span></li>` : "");
  return `<div class="cols"><div><h3>Completions</h3><ul data-testid="outcomes">${li(usage.outcomes)}</ul></div>
    <div><h3>Evaluations</h3><ul>${li(fail.evaluations)}</ul></div>
    <div><h3>Failures by reason</h3><ul>${kinds || "<li>none</li>"}</ul></div></div>`;
}

function islandTable(islands) {
  return `<table data-testid="islands"><thead><tr><th>Island</th><th>Programs</th><th>In archive</th>
    <th>Best</th></tr></thead><tbody>${islands.map((i) => `<tr><td>${i.island}</td><td>${i.programs}</td>
    <td>${i.in_archive}</td><td>${num(i.best_score)} ${progLink(i.best_program_id)}</td></tr>`).join("")}
    </tbody></table>`;
}

async function render(runId) {
  const [run, timeline, grid, islands, fail, usage, adapters] = await Promise.all([
    api(`/runs/${runId}`), api(`/runs/${runId}/timeline`), api(`/runs/${runId}/map-elites`),
    api(`/ui/runs/${runId}/islands`), api(`/runs/${runId}/failures`), api(`/runs/${runId}/llm-usage`),
    api(`/ui/runs/${runId}/adapters`),
  ]);
  if (!document.getElementById("run-summary")) return run; // the user left the page meanwhile
  document.getElementById("run-summary").innerHTML = summary(run);
  const marks = adapters.map((a) => ({ x: a.first_iteration, label: `adapter v${a.version}` }));
  stepChart(document.getElementById("chart"), timelineSeries(timeline), { marks });
  document.getElementById("islands").innerHTML = islandTable(islands);
  document.getElementById("outcomes").innerHTML = outcomes(fail, usage);
  const maps = document.getElementById("maps");
  maps.innerHTML = `<p class="muted">${grid.dimensions.map(esc).join(" × ")}, ${grid.bins} bins each</p>`;
  const scores = grid.islands.flatMap((i) => i.cells.map((c) => c.score)).filter((s) => s !== null);
  const domain = scores.length ? [Math.min(...scores), Math.max(...scores)] : [0, 1];
  for (const island of grid.islands) {
    const box = document.createElement("div");
    box.className = "map";
    box.innerHTML = `<h4>Island ${island.island}: ${island.occupied} / ${grid.cells_per_island} cells</h4>`;
    maps.appendChild(box);
    heatmap(box, island, grid.bins, grid.dimensions, domain);
  }
  return run;
}

export async function runPage(runId) {
  setApp(`<h1>Run ${runId} <a class="small" href="#/lineage/${runId}">lineage</a></h1>
    <p id="live" data-testid="live" class="muted"></p>
    <div id="run-summary"></div>
    <h2>Best score over time</h2><div id="chart" data-testid="chart"></div>
    <div class="cols"><div><h2>Islands</h2><div id="islands"></div></div>
      <div><h2>MAP-Elites</h2><div id="maps" data-testid="maps"></div></div></div>
    <h2>Outcomes</h2><div id="outcomes"></div>`);
  const run = await render(runId);
  if (!ACTIVE.includes(run.status)) return null;
  const live = document.getElementById("live");
  let received = 0, pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try { await render(runId); } catch (err) { live.textContent = `live update failed: ${err.message}`; }
    }, 400);
  };
  const source = events(runId, {
    progress: (r) => {
      received += 1;
      live.dataset.events = received;
      live.textContent = `live: ${r.status}, iteration ${r.iterations}, ${received} updates`;
      refresh();
    },
    program: () => { received += 1; live.dataset.events = received; refresh(); },
    end: (e) => { live.textContent = `run ${e.status}`; live.dataset.ended = "1"; refresh(); },
  });
  return () => { source.close(); clearTimeout(pending); };
}
