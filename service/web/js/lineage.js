// The lineage graph: the best programs' ancestries first (load more on demand), zoom and pan,
// nodes coloured by score, the path from the initial program to the best highlighted.
import { api } from "./api.js";
import { num, setApp } from "./dom.js";

const d3 = window.d3;

function tree(nodes) {
  const ids = new Set(nodes.map((n) => n.id));
  const rows = nodes.map((n) => ({ ...n, parent: ids.has(n.parent_id) ? n.parent_id : "root" }));
  rows.push({ id: "root", parent: null, virtual: true });
  return d3.stratify().id((d) => String(d.id)).parentId((d) => (d.parent === null ? null : String(d.parent)))(rows);
}

function draw(el, data) {
  const path = new Set(data.best_path);
  const root = tree(data.nodes);
  d3.tree().nodeSize([26, 90])(root);
  const scores = data.nodes.map((n) => n.score).filter((s) => s !== null);
  const colour = d3.scaleSequential(d3.interpolateViridis)
    .domain(scores.length ? d3.extent(scores) : [0, 1]);
  el.innerHTML = "";
  const svg = d3.select(el).append("svg").attr("class", "lineage").attr("width", "100%").attr("height", 560);
  const g = svg.append("g");
  const zoom = d3.zoom().scaleExtent([0.05, 4]).on("zoom", (e) => g.attr("transform", e.transform));
  svg.call(zoom);
  const links = root.links().filter((l) => !l.source.data.virtual);
  g.selectAll("path.link").data(links).join("path")
    .attr("class", (l) => `link${path.has(l.source.data.id) && path.has(l.target.data.id) ? " best-path" : ""}`)
    .attr("d", d3.linkHorizontal().x((d) => d.y).y((d) => d.x));
  const node = g.selectAll("g.node").data(root.descendants().filter((d) => !d.data.virtual)).join("g")
    .attr("class", (d) => `node${path.has(d.data.id) ? " on-path" : ""}${d.data.in_archive ? "" : " evicted"}`)
    .attr("data-program", (d) => d.data.id)
    .attr("transform", (d) => `translate(${d.y},${d.x})`)
    .style("cursor", "pointer")
    .on("click", (_, d) => { location.hash = `#/program/${d.data.id}`; });
  node.append("circle").attr("r", 7)
    .attr("fill", (d) => (d.data.score === null ? "#ccc" : colour(d.data.score)));
  node.append("text").attr("x", 10).attr("dy", "0.32em").text((d) => `#${d.data.id} ${num(d.data.score, 3)}`);
  node.append("title").text((d) => `program ${d.data.id} (${d.data.status}${d.data.in_archive ? "" : ", not in archive"})
island ${d.data.island}, generation ${d.data.generation}, score ${d.data.score}`);
  fit(svg, zoom, root.descendants().filter((d) => !d.data.virtual), el.clientWidth || 1000, 560);
}

// Starts zoomed so the whole graph fits (never above natural size); zoom/pan goes on from there.
function fit(svg, zoom, nodes, width, height) {
  if (!nodes.length) return;
  const [x0, x1] = d3.extent(nodes, (d) => d.x), [y0, y1] = d3.extent(nodes, (d) => d.y);
  const k = Math.min(1, (width - 140) / Math.max(1, y1 - y0), (height - 40) / Math.max(1, x1 - x0));
  svg.call(zoom.transform, d3.zoomIdentity.translate(30 - y0 * k, height / 2 - ((x0 + x1) / 2) * k).scale(k));
}

export async function lineagePage(runId) {
  let k = 20;
  setApp(`<h1>Lineage of <a href="#/run/${runId}">run ${runId}</a></h1>
    <p><span id="lineage-count" data-testid="lineage-count"></span>
      <button id="more">Load more</button>
      <span class="muted">Scroll to zoom, drag to pan; the thick line leads from the initial
      program to the best; hollow nodes left the archive.</span></p>
    <div id="graph" data-testid="lineage"></div>`);
  const load = async () => {
    const data = await api(`/ui/runs/${runId}/top-lineages?k=${k}`);
    draw(document.getElementById("graph"), data);
    const count = document.getElementById("lineage-count");
    count.textContent = `Showing ${data.nodes.length} of ${data.total} programs (the ${k} best and their ancestors)`;
    count.dataset.shown = data.nodes.length;
    document.getElementById("more").disabled = data.nodes.length >= data.total;
  };
  document.getElementById("more").addEventListener("click", () => { k *= 2; load().catch((e) => alert(e.message)); });
  await load();
}
