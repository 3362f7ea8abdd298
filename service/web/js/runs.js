// The runs list: status, problem, progress, best score, tokens, times; start/pause/resume/stop.
import { api } from "./api.js";
import { esc, num, progLink, setApp, when } from "./dom.js";

const ACTIONS = {
  created: ["start", "stop"], queued: ["pause", "stop"], running: ["pause", "stop"],
  paused: ["resume", "stop"], failed: ["resume"], completed: [], stopped: [],
};

function row(run, problems, canWrite) {
  const pct = run.progress === null ? "–" : `${Math.round(run.progress * 100)}%`;
  const buttons = canWrite
    ? ACTIONS[run.status]?.map((a) => `<button data-action="${a}" data-run="${run.id}">${a}</button>`).join(" ")
    : "";
  return `<tr data-run="${run.id}">
    <td><input type="checkbox" class="pick" value="${run.id}"></td>
    <td><a href="#/run/${run.id}">run ${run.id}</a></td>
    <td><span class="status ${esc(run.status)}">${esc(run.status)}</span></td>
    <td>${esc(problems[run.problem_id] || run.problem_id)}</td>
    <td><progress max="1" value="${run.progress ?? 0}"></progress> ${pct}
        <span class="muted">${run.iterations}/${run.budget_iterations ?? "∞"}</span></td>
    <td>${num(run.best_score)} ${progLink(run.best_program_id)}</td>
    <td>${run.prompt_tokens + run.completion_tokens}</td>
    <td>${when(run.started_at)}</td><td>${when(run.finished_at)}</td>
    <td>${buttons || ""}</td></tr>`;
}

async function listRuns(expect) {
  // the API may answer a POST just before its commit lands: read again until the change shows
  for (let i = 0; ; i += 1) {
    const runs = await api("/runs?limit=200");
    const seen = expect && runs.items.find((r) => r.id === expect.id);
    if (!seen || seen.status === expect.status || i >= 10) return runs;
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

export async function runsPage(expect = null) {
  const [runs, probs] = await Promise.all([listRuns(expect), api("/problems?limit=200")]);
  const problems = Object.fromEntries(probs.items.map((p) => [p.id, p.name]));
  const canWrite = ["write", "admin"].includes(document.body.dataset.scope);
  const app = setApp(`<h1>Runs</h1>
    <p><button id="compare-runs">Compare the two checked runs</button> <span id="runs-msg" class="error"></span></p>
    <table class="runs" data-testid="runs-table"><thead><tr><th></th><th>Run</th><th>Status</th>
      <th>Problem</th><th>Progress</th><th>Best score</th><th>LLM tokens</th><th>Started</th>
      <th>Finished</th><th>Control</th></tr></thead>
    <tbody>${runs.items.map((r) => row(r, problems, canWrite)).join("")}</tbody></table>
    ${runs.items.length ? "" : '<p class="muted">No runs yet: `evoforge run` or POST /api/runs.</p>'}`);
  app.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", async () => {
    try {
      const after = await api(`/runs/${b.dataset.run}/${b.dataset.action}`, { method: "POST" });
      await runsPage(after);
    } catch (err) {
      app.querySelector("#runs-msg").textContent = err.message;
    }
  }));
  app.querySelector("#compare-runs").addEventListener("click", () => {
    const picked = [...app.querySelectorAll("input.pick:checked")].map((c) => c.value);
    if (picked.length !== 2) {
      app.querySelector("#runs-msg").textContent = "Check exactly two runs to compare them.";
      return;
    }
    location.hash = `#/compare/runs/${picked[0]}/${picked[1]}`;
  });
}
