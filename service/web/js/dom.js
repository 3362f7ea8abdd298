// Small DOM helpers: escaping, formatting, links.
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

export function num(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  const text = Number(value).toPrecision(digits);
  // trailing zeros go only after a decimal point: 300 stays 300 (it printed 3), 1.500 becomes 1.5
  return text.includes(".") && !text.includes("e") ? text.replace(/\.?0+$/, "") : text;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function progLink(id) {
  return id ? `<a href="#/program/${id}">#${id}</a>` : "–";
}

export function setApp(html) {
  const app = document.getElementById("app");
  app.innerHTML = html;
  return app;
}

export function showError(err) {
  setApp(`<p class="error" data-testid="error">${esc(err.message || err)}</p>`);
}
