// A program's files and diffs. A single-file program (its one file is program.py) shows as one
// code block and one diff; a program that is a folder as a file list whose entries select the
// file shown, and as one diff per changed file with the unchanged files named.
import { esc } from "./dom.js";

export const SINGLE = "program.py"; // evaluators/tree.py SINGLE: the path of a single-file program

export function isTree(files) {
  const paths = Object.keys(files || {});
  return !(paths.length === 1 && paths[0] === SINGLE);
}

export function diffHtml(diff, format = "line-by-line") {
  if (!diff) return '<p class="muted">No changes.</p>';
  return window.Diff2Html.html(diff, { drawFileList: false, outputFormat: format, matching: "lines" });
}

function highlighted(path, text) {
  const ext = path.includes(".") ? path.split(".").pop() : "";
  const language = window.hljs.getLanguage(ext) ? ext : "plaintext";
  return window.hljs.highlight(text, { language }).value;
}

// The code of every file; changes (path -> "changed" | "added" | ...) mark the list's entries.
export function filesHtml(files, changes = {}) {
  if (!isTree(files)) {
    return `<pre class="code"><code class="hljs language-python" data-testid="code">${highlighted(SINGLE, files[SINGLE])}</code></pre>`;
  }
  const paths = Object.keys(files).sort();
  const list = paths.map((p, i) => `<li><button type="button" class="file${i ? "" : " active"}"
    data-file="${esc(p)}">${esc(p)}</button>${changes[p] && changes[p] !== "unchanged"
    ? ` <span class="change ${esc(changes[p])}">${esc(changes[p])}</span>` : ""}</li>`).join("");
  const code = paths.map((p, i) => `<div class="file-code" data-file="${esc(p)}"${i ? " hidden" : ""}>
    <h3>${esc(p)}</h3><pre class="code"><code class="hljs" data-testid="file-code">${highlighted(p, files[p])}</code></pre></div>`).join("");
  return `<div class="files"><ul class="file-list" data-testid="file-list">${list}</ul>
    <div class="file-view">${code}</div></div>`;
}

// Shows the file whose list entry is clicked, within el.
export function wireFiles(el) {
  el.querySelectorAll(".file-list button[data-file]").forEach((button) => {
    button.addEventListener("click", () => {
      el.querySelectorAll(".file-list button").forEach((b) => b.classList.toggle("active", b === button));
      el.querySelectorAll(".file-code").forEach((d) => { d.hidden = d.dataset.file !== button.dataset.file; });
    });
  });
}

// One diff per changed file (service/api/diffs.py FileDiff), then the unchanged files by name.
export function fileDiffsHtml(diffs, format = "line-by-line") {
  const same = diffs.filter((d) => d.change === "unchanged").map((d) => d.path);
  const changed = diffs.filter((d) => d.change !== "unchanged").map((d) => `<div class="file-diff"
    data-testid="file-diff" data-path="${esc(d.path)}" data-change="${esc(d.change)}">${diffHtml(d.diff, format)}</div>`);
  return `${changed.join("") || '<p class="muted">No changes.</p>'}${same.length
    ? `<p class="muted" data-testid="unchanged-files">Unchanged: ${same.map(esc).join(", ")}</p>` : ""}`;
}
