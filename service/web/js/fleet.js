// The fleet (admin tokens): workers, controllers and the runs they drive, queues with the
// evaluations waiting and the age of the oldest; refreshed every few seconds.
import { api } from "./api.js";
import { esc, setApp, showError, when } from "./dom.js";

const REFRESH_MS = 5000;

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  return seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

function state(m) {
  return `<span class="state ${esc(m.state)}">${esc(m.state)}</span>`;
}

function workerRow(w) {
  return `<tr data-member="${esc(w.name)}"><td>${esc(w.name)}</td><td>${esc(w.host)}</td>
    <td>${w.pid}</td><td>${w.queues.map(esc).join(", ")}</td><td>${w.concurrency}</td>
    <td>${esc(w.version)}</td><td>${ago(w.silent_s)} ago</td><td>${state(w)}</td></tr>`;
}

function controllerRow(c) {
  const runs = c.runs.map((r) => `<a href="#/run/${r.id}">run ${r.id}</a> (${esc(r.status)}, `
    + `${r.iterations} it.)`).join(", ") || "–";
  return `<tr data-member="${esc(c.name)}"><td>${esc(c.name)}</td><td>${esc(c.host)}</td>
    <td>${c.pid}</td><td>${c.concurrency}</td><td>${esc(c.version)}</td>
    <td>${ago(c.silent_s)} ago</td><td>${state(c)}</td><td>${runs}</td></tr>`;
}

function queueRow(q) {
  const alive = q.workers_alive || q.name === "local" ? q.workers_alive : `<span class="error">0</span>`;
  return `<tr data-queue="${esc(q.name)}"><td>${esc(q.name)}</td><td>${q.waiting}</td>
    <td>${q.running}</td><td>${ago(q.oldest_waiting_s)}</td><td>${alive}</td></tr>`;
}

function table(testid, head, rows, empty) {
  return `<table data-testid="${testid}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}
    </tr></thead><tbody>${rows.join("")}</tbody></table>${rows.length ? "" : `<p class="muted">${empty}</p>`}`;
}

function render(f) {
  setApp(`<h1>Fleet</h1>
    <p class="muted">Updated ${when(f.at)}; a worker or controller silent for ${f.window_s} s is lost.</p>
    <h2>Queues</h2>${table("queues", ["Queue", "Waiting", "Running", "Oldest waiting", "Workers alive"],
      f.queues.map(queueRow), "No queue has evaluations or workers.")}
    <h2>Workers</h2>${table("workers", ["Worker", "Host", "PID", "Queues", "Processes", "Version",
      "Last seen", "State"], f.workers.map(workerRow),
      "No worker has written a heartbeat: start `evoforge worker --db URL`.")}
    <h2>Controllers</h2>${table("controllers", ["Controller", "Host", "PID", "Max runs", "Version",
      "Last seen", "State", "Runs driven"], f.controllers.map(controllerRow),
      "No controller has written a heartbeat: start `evoforge controller` or `evoforge serve`.")}`);
}

export async function fleetPage() {
  render(await api("/fleet"));
  const timer = setInterval(() => api("/fleet").then(render).catch((err) => {
    clearInterval(timer);
    showError(err);
  }), REFRESH_MS);
  return () => clearInterval(timer);
}
