// d3 charts: step curves of the best score (one point per improvement) and MAP-Elites heatmaps.
const d3 = window.d3;

// series: [{name, points: [{x, y, program_id}], cls}]; draws one line and one dot per point.
// marks: [{x, label}] drawn as labelled vertical lines (e.g. adapter versions).
export function stepChart(el, series, { xLabel = "iteration", yLabel = "best score", marks = [] } = {}) {
  const width = 640, height = 300, m = { top: 16, right: 110, bottom: 36, left: 60 };
  const all = series.flatMap((s) => s.points);
  el.innerHTML = "";
  if (!all.length) {
    el.innerHTML = '<p class="muted">No scored programs yet.</p>';
    return;
  }
  const xs = all.map((p) => p.x).concat(marks.filter((k) => k.x !== null).map((k) => k.x));
  const x = d3.scaleLinear().domain(d3.extent(xs)).nice().range([m.left, width - m.right]);
  const y = d3.scaleLinear().domain(d3.extent(all, (p) => p.y)).nice().range([height - m.bottom, m.top]);
  if (x.domain()[0] === x.domain()[1]) x.domain([x.domain()[0] - 1, x.domain()[0] + 1]);
  if (y.domain()[0] === y.domain()[1]) y.domain([y.domain()[0] - 1, y.domain()[0] + 1]);
  const colour = d3.scaleOrdinal(d3.schemeTableau10);
  const svg = d3.select(el).append("svg").attr("viewBox", `0 0 ${width} ${height}`).attr("class", "chart");
  svg.append("g").attr("transform", `translate(0,${height - m.bottom})`).call(d3.axisBottom(x).ticks(8));
  svg.append("g").attr("transform", `translate(${m.left},0)`).call(d3.axisLeft(y).ticks(6));
  svg.append("text").attr("x", (width - m.right + m.left) / 2).attr("y", height - 4)
    .attr("text-anchor", "middle").attr("class", "axis-label").text(xLabel);
  svg.append("text").attr("transform", "rotate(-90)").attr("x", -height / 2).attr("y", 14)
    .attr("text-anchor", "middle").attr("class", "axis-label").text(yLabel);
  const mark = svg.selectAll("g.mark").data(marks.filter((k) => k.x !== null)).join("g").attr("class", "mark");
  mark.append("line").attr("x1", (k) => x(k.x)).attr("x2", (k) => x(k.x))
    .attr("y1", m.top).attr("y2", height - m.bottom);
  mark.append("text").attr("x", (k) => x(k.x) + 3).attr("y", m.top + 8).text((k) => k.label);
  const line = d3.line().curve(d3.curveStepAfter).x((p) => x(p.x)).y((p) => y(p.y));
  series.forEach((s, i) => {
    const c = s.colour || colour(i);
    const g = svg.append("g").attr("class", `series ${s.cls || ""}`).attr("data-series", s.name);
    const pts = s.points.slice();
    if (pts.length) pts.push({ ...pts[pts.length - 1], x: x.domain()[1], extra: true });
    g.append("path").attr("d", line(pts)).attr("fill", "none").attr("stroke", c)
      .attr("stroke-width", s.width || 1.5);
    g.selectAll("circle").data(s.points).join("circle").attr("class", "point")
      .attr("cx", (p) => x(p.x)).attr("cy", (p) => y(p.y)).attr("r", s.width ? 4 : 3).attr("fill", c)
      .style("cursor", "pointer")
      .on("click", (_, p) => { if (p.program_id) location.hash = `#/program/${p.program_id}`; })
      .append("title").text((p) => `#${p.program_id}: ${p.y} at ${p.x}`);
    svg.append("text").attr("x", width - m.right + 6).attr("y", m.top + 14 * i + 4)
      .attr("fill", c).attr("class", "legend").text(s.name);
  });
}

// grid: one island of /map-elites; bins per dimension; first two dimensions are x and y.
export function heatmap(el, island, bins, dims, domain) {
  const size = Math.max(8, Math.min(28, Math.floor(260 / bins)));
  const rows = dims.length > 1 ? bins : 1;
  const colour = d3.scaleSequential(d3.interpolateViridis).domain(domain);
  const svg = d3.select(el).append("svg").attr("class", "heatmap")
    .attr("width", bins * size + 2).attr("height", rows * size + 2);
  svg.selectAll("rect.empty").data(d3.range(bins * rows)).join("rect").attr("class", "empty")
    .attr("x", (i) => 1 + (i % bins) * size).attr("y", (i) => 1 + Math.floor(i / bins) * size)
    .attr("width", size - 1).attr("height", size - 1);
  svg.selectAll("rect.cell").data(island.cells).join("rect").attr("class", "cell")
    .attr("data-program", (c) => c.program_id)
    .attr("x", (c) => 1 + c.cell[0] * size).attr("y", (c) => 1 + (rows - 1 - (c.cell[1] || 0)) * size)
    .attr("width", size - 1).attr("height", size - 1)
    .attr("fill", (c) => (c.score === null ? "#bbb" : colour(c.score)))
    .on("click", (_, c) => { location.hash = `#/program/${c.program_id}`; })
    .append("title").text((c) => `cell ${c.cell.join(",")}: #${c.program_id} score ${c.score}`);
}
