// A program: highlighted code (a file list for a folder), diff against its parent (per file),
// metrics, artifacts, failure, the LLM exchange behind it, links to relatives, and the lineage
// path with the score change per step.
import { api } from "./api.js";
import { esc, num, progLink, setApp } from "./dom.js";
import { diffHtml, fileDiffsHtml, filesHtml, isTree, wireFiles } from "./files.js";

function kv(obj) {
  const rows = Object.entries(obj || {}).map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td><pre>${esc(typeof v === "string" ? v : JSON.stringify(v, null, 1))}</pre></td></tr>`);
  return rows.length ? `<table class="kv">${rows.join("")}</table>` : '<p class="muted">none</p>';
}

function pathTable(ancestors) {
  const chain = ancestors.slice().reverse();
  return `<table data-testid="lineage-path"><thead><tr><th>Step</th><th>Program</th><th>Island</th>
    <th>Score</th><th>Change</th></tr></thead><tbody>${chain.map((p, i) => {
    const prev = chain[i - 1];
    const delta = prev && p.score !== null && prev.score !== null ? p.score - prev.score : null;
    const cls = delta > 0 ? "up" : delta < 0 ? "down" : "";
    return `<tr><td>${i}</td><td>${progLink(p.id)} ${esc(p.kind)}</td><td>${p.island}</td>
      <td>${num(p.score)}</td><td class="${cls}">${delta === null ? "–" : (delta > 0 ? "+" : "") + num(delta)}</td></tr>`;
  }).join("")}</tbody></table>`;
}

// The answer parser's repairs of the completion's form (service/edits/repair.py): never silent.
function repaired(sample) {
  if (!sample.repair) return "";
  return `<p data-testid="llm-repair" class="warn">answer repaired before it was read:
    <b>${esc(sample.repair.split("+").join(", "))}</b> (the completion below is as the model wrote it)</p>`;
}

function exchange(prog, sample) {
  if (!prog.prompt && !prog.completion) return '<p class="muted">No LLM call (initial program or migrant).</p>';
  const meta = sample ? `<p data-testid="llm-meta">model <b>${esc(sample.model)}</b>, adapter
    <b>${esc(sample.adapter || "none")}</b>, ${sample.prompt_tokens} prompt + ${sample.completion_tokens}
    completion tokens, ${num(sample.latency_s, 3)} s, finish ${esc(sample.finish_reason)}, outcome
    ${esc(sample.outcome)}${sample.rejection ? `: ${esc(sample.rejection)}` : ""}</p>${repaired(sample)}` : "";
  const prompt = (prog.prompt || []).map((m) =>
    `<h4>${esc(m.role || "message")}</h4><pre class="wrap">${esc(m.content ?? JSON.stringify(m))}</pre>`).join("");
  return `${meta}<details><summary>Prompt</summary>${prompt}</details>
    <details open><summary>Completion</summary><pre class="wrap">${esc(prog.completion)}</pre></details>`;
}

function evaluations(list) {
  if (!list.length) return '<p class="muted">none</p>';
  return `<table><thead><tr><th>Attempt</th><th>Status</th><th>Executor / worker</th><th>Stage</th>
    <th>Duration</th><th>Sandbox layers</th><th>Error</th></tr></thead><tbody>${list.map((e) => `<tr><td>${e.attempt}</td>
    <td>${esc(e.status)}</td><td>${esc(e.executor)} / ${esc(e.worker)}</td><td>${e.stage}</td>
    <td>${num(e.duration_s, 3)} s</td><td>${esc((e.layers || []).join(", "))}</td>
    <td>${esc(e.error_kind || "")} ${esc(e.error || "")}</td></tr>`).join("")}
    </tbody></table>`;
}

export async function programPage(id) {
  const [prog, sample, ancestors, children] = await Promise.all([
    api(`/programs/${id}`), api(`/ui/programs/${id}/sample`), api(`/programs/${id}/ancestors`),
    api(`/programs/${id}/descendants?depth=1&limit=200`),
  ]);
  const tree = isTree(prog.files);
  const changes = Object.fromEntries((prog.file_diffs || []).map((d) => [d.path, d.change]));
  const diff = tree && prog.file_diffs ? fileDiffsHtml(prog.file_diffs) : diffHtml(prog.diff);
  const insp = prog.inspiration_ids.map((i) => progLink(i)).join(" ") || "none";
  const kids = children.items.map((c) => progLink(c.id)).join(" ") || "none";
  const app = setApp(`<h1 data-testid="program-title">Program ${prog.id}
      <span class="status ${esc(prog.status)}">${esc(prog.status)}</span></h1>
    <p>run <a href="#/run/${prog.run_id}">${prog.run_id}</a> (<a href="#/lineage/${prog.run_id}">lineage</a>),
      island ${prog.island}, generation ${prog.generation}, iteration ${prog.iteration}, ${esc(prog.kind)},
      ${prog.in_archive ? "in the archive" : "not in the archive"}; score <b data-testid="score">${num(prog.score)}</b>
      ${prog.tier ? `<span class="muted" data-testid="tier">(${esc(prog.tier)})</span>` : ""}</p>
    <p>Parent: ${progLink(prog.parent_id)} · Inspirations: ${insp} · Children: ${kids}
      ${prog.duplicate_of ? ` · duplicate of ${progLink(prog.duplicate_of)}` : ""}</p>
    <form id="compare-form">Compare with program <input id="compare-id" type="number" min="1" required>
      <button type="submit">compare</button></form>
    ${prog.failure_reason && prog.status === "ok" ? `<h2>Error reported by the evaluator</h2><pre class="error wrap" data-testid="reported-error">${esc(prog.failure_reason)}</pre>`
      : prog.failure_reason ? `<h2>Failure</h2><pre class="error wrap" data-testid="failure">${esc(prog.failure_kind)}: ${esc(prog.failure_reason)}</pre>` : ""}
    <h2>Diff against the parent</h2><div data-testid="diff">${diff}</div>
    <h2>${tree ? `Files (${Object.keys(prog.files).length})` : "Code"}</h2>${filesHtml(prog.files, changes)}
    <div class="cols"><div><h2>Metrics</h2>${kv(prog.metrics)}<h3>Features</h3>${kv(prog.features)}</div>
      <div><h2>Artifacts</h2>${kv(prog.artifacts)}</div></div>
    <h2>Lineage path</h2>${pathTable(ancestors)}
    <h2>LLM exchange</h2>${exchange(prog, sample)}
    <h2>Evaluations</h2>${evaluations(prog.evaluations)}`);
  wireFiles(app);
  document.getElementById("compare-form").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/compare/programs/${prog.id}/${document.getElementById("compare-id").value}`;
  });
}
