// A run: every evaluated program's score under the best so far (overall and per island), MAP-Elites
// heatmaps, islands, outcome counts; live while the run is active (server-sent events).
import { api, events } from "./api.js";
import { esc, num, progLink, setApp, when } from "./dom.js";
import { heatmap, stepChart } from "./charts.js";

const ACTIVE = ["created", "queued", "running"];
const PAGE = 20000; // programs per /scores request
const CAP = 200000; // programs the chart keeps; past that it says how many it left out

// The run's evaluated programs, kept across live refreshes: a refresh fetches only programs after
// the last one read, or after the first that was still being evaluated (it joins when it ends).
function scoreCache(runId) {
  const rows = [];
  let cursor = 0, total = 0, queue = Promise.resolve();
  const load = async () => {
    while (rows.length && rows[rows.length - 1].program_id > cursor) rows.pop();
    let after = cursor, unfinished = null;
    while (after !== null && rows.length < CAP) {
      const page = await api(`/runs/${runId}/scores?after_id=${after}&limit=${PAGE}`);
      page.ids.forEach((id, i) => rows.push({
        program_id: id, x: page.iterations[i], island: page.islands[i], y: page.scores[i] ?? undefined,
      }));
      total = page.total;
      if (page.first_unfinished_id !== null) {
        unfinished = Math.min(unfinished ?? Infinity, page.first_unfinished_id);
      }
      after = page.next_after;
    }
    const last = rows.length ? rows[rows.length - 1].program_id : cursor;
    cursor = unfinished === null ? last : Math.min(last, unfinished - 1);
    return { rows: rows.slice(), total };
  };
  return () => (queue = queue.then(load, load)); // one load at a time: each resumes the last
}

function points(list) {
  return list.map((p) => ({ x: p.iteration, y: p.score, program_id: p.program_id }));
}

export function timelineSeries(timeline, label = "overall") {
  const islands = Object.entries(timeline.islands).map(([i, list]) => ({
    name: `island ${i}`, cls: "island", points: points(list),
  }));
  return [...islands, { name: label, cls: "overall", width: 2.5, colour: "#222", points: points(timeline.overall) }];
}

// The problem's reference value and where the run's best stands against it (gap > 0: beats it).
function referenceRow(ref) {
  if (!ref) return "";
  const goal = ref.direction === "minimize" ? "lower" : "higher";
  const pct = ref.relative_gap === null ? "" : ` (${num(100 * ref.relative_gap, 3)}%)`;
  let verdict = "no scored program yet";
  if (ref.gap > 0) verdict = `<span class="beats">beats it by ${num(ref.gap, 3)}${pct}</span>`;
  else if (ref.gap < 0) verdict = `<span class="short">is ${num(-ref.gap, 3)}${pct} short of it</span>`;
  else if (ref.gap === 0) verdict = "equals it";
  const how = ref.verified ? "verified: a public construction re-scores to it" : "reported, not re-scored here";
  const slack = ref.tolerance === null ? "" : `, holds at tolerance ${ref.tolerance}`;
  const note = ref.note ? `<details><summary>note</summary>${esc(ref.note)}</details>` : "";
  return `<dt>Reference</dt><dd class="reference" data-testid="reference">
    <b>${num(ref.best_known, 10)}</b> (${how}${slack}): the best ${verdict} (${goal} is better)
    <div class="muted small">${esc(ref.source || "source not given")}</div>${note}</dd>`;
}

function summary(run, ref) {
  return `<dl class="summary" data-testid="run-summary">
    <dt>Status</dt><dd data-testid="run-status">${esc(run.status)}${run.stop_reason ? ` (${esc(run.stop_reason)})` : ""}</dd>
    <dt>Iterations</dt><dd data-testid="run-iterations">${run.iterations} / ${run.budget_iterations ?? "∞"}</dd>
    <dt>Best</dt><dd>${num(run.best_score)} ${progLink(run.best_program_id)} (initial ${num(run.initial_score)})</dd>
    ${referenceRow(ref)}
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
  const repairs = Object.keys(usage.repairs || {}).length
    ? `<h4>Answers repaired</h4><ul data-testid="repairs">${li(usage.repairs)}</ul>` : "";
  return `<div class="cols"><div><h3>Completions</h3><ul data-testid="outcomes">${li(usage.outcomes)}</ul>${repairs}</div>
    <div><h3>Evaluations</h3><ul>${li(fail.evaluations)}</ul></div>
    <div><h3>Failures by reason</h3><ul>${kinds || "<li>none</li>"}</ul></div></div>`;
}

function islandTable(islands) {
  const best = (i) => (i.best_score === null ? "–" : `${num(i.best_score)} ${progLink(i.best_program_id)}`);
  return `<table data-testid="islands"><thead><tr><th>Island</th><th>Programs</th><th>In archive</th>
    <th>Best</th></tr></thead><tbody>${islands.map((i) => `<tr data-island="${i.island}"><td>${i.island}</td>
    <td>${i.programs}</td><td>${i.in_archive}</td><td>${best(i)}</td></tr>`).join("")}
    </tbody></table>`;
}

function chart(run, timeline, adapters, evaluated) {
  const { rows, total } = evaluated;
  const dots = rows.filter((r) => r.y !== undefined);
  const failed = rows.filter((r) => r.y === undefined);
  const last = rows.reduce((m, r) => Math.max(m, r.x), 0);
  const marks = adapters.map((a) => ({ x: a.first_iteration, label: `adapter v${a.version}` }));
  stepChart(document.getElementById("chart"), timelineSeries(timeline), {
    marks, dots, failed, yLabel: "score", xDomain: [0, Math.max(run.iterations, last, 1)],
  });
  const left = total > rows.length ? `; the first ${rows.length} of ${total} are drawn` : "";
  document.getElementById("chart-caption").innerHTML = `<span data-testid="dot-count">${rows.length}</span>
    evaluated programs: a dot each (colour = island), ${failed.length} failed ticked along the bottom${left};
    lines: best score so far, overall (dashed) and per island; big dots: improvements.`;
}

async function render(runId, evaluatedScores) {
  const [run, timeline, grid, islands, fail, usage, adapters, evaluated, ref] = await Promise.all([
    api(`/runs/${runId}`), api(`/runs/${runId}/timeline`), api(`/runs/${runId}/map-elites`),
    api(`/ui/runs/${runId}/islands`), api(`/runs/${runId}/failures`), api(`/runs/${runId}/llm-usage`),
    api(`/ui/runs/${runId}/adapters`), evaluatedScores(), api(`/ui/runs/${runId}/reference`),
  ]);
  if (!document.getElementById("run-summary")) return run; // the user left the page meanwhile
  document.getElementById("run-summary").innerHTML = summary(run, ref);
  chart(run, timeline, adapters, evaluated);
  document.getElementById("islands").innerHTML = islandTable(islands);
  document.getElementById("outcomes").innerHTML = outcomes(fail, usage);
  const maps = document.getElementById("maps");
  maps.innerHTML = `<p class="muted">${grid.dimensions.map(esc).join(" × ")}, ${grid.bins} bins each</p>`;
  const scores = grid.islands.flatMap((i) => i.cells.map((c) => c.score)).filter((s) => s !== null);
  const range = scores.length ? [Math.min(...scores), Math.max(...scores)] : [0, 1];
  const domain = grid.direction === "minimize" ? range.reverse() : range; // yellow = best
  for (const island of grid.islands) {
    const box = document.createElement("div");
    box.className = "map";
    box.dataset.island = island.island;
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
    <h2>Scores over iterations</h2><div id="chart" data-testid="chart"></div>
    <p id="chart-caption" class="muted small" data-testid="chart-caption"></p>
    <div class="cols"><div><h2>Islands</h2><div id="islands"></div></div>
      <div><h2>MAP-Elites</h2><div id="maps" data-testid="maps"></div></div></div>
    <h2>Outcomes</h2><div id="outcomes"></div>`);
  const evaluated = scoreCache(runId);
  const run = await render(runId, evaluated);
  if (!ACTIVE.includes(run.status)) return null;
  const live = document.getElementById("live");
  let received = 0, pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try { await render(runId, evaluated); } catch (err) { live.textContent = `live update failed: ${err.message}`; }
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
