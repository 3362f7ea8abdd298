// d3 charts: step curves of the best score over every evaluated program (one dot each, failed ones
// as ticks along the bottom) and MAP-Elites heatmaps.
const d3 = window.d3;
const W = 640, H = 300, M = { top: 16, right: 110, bottom: 36, left: 60 };
const BAND = 16; // the strip under the score axis where failed programs are ticked

// Returns [lo, hi] widened to a non-empty interval (a lone value v gives [v - pad, v + pad]).
function span([lo, hi], pad) {
  return lo === hi ? [lo - pad, hi + pad] : [lo, hi];
}

// Returns [lo, hi] with a 4% margin each side, so that points on the extremes stay off the frame.
function margin([lo, hi]) {
  const m = (hi - lo) * 0.04;
  return [lo - m, hi + m];
}

// series: [{name, points: [{x, y, program_id}], cls, colour, width}]: one step line and one
// clickable circle per point (the improvements). marks: [{x, label}] drawn as labelled vertical
// lines (adapter versions). dots: [{x, y, program_id, island}] every scored program; failed:
// [{x, program_id}] every failed one. xDomain: the axis range (defaults to the points' extent).
export function stepChart(el, series, { xLabel = "iteration", yLabel = "best score", marks = [],
  dots = [], failed = [], xDomain = null } = {}) {
  const all = series.flatMap((s) => s.points);
  el.innerHTML = "";
  if (!all.length && !dots.length && !failed.length) {
    el.innerHTML = '<p class="muted">No evaluated programs yet.</p>';
    return;
  }
  const marked = marks.filter((k) => k.x !== null && k.x !== undefined);
  const xs = all.concat(dots, failed).map((p) => p.x).concat(marked.map((k) => k.x));
  const x = d3.scaleLinear().domain(span(xDomain || d3.extent(xs), 1)).range([M.left, W - M.right]);
  if (!xDomain) x.nice();
  const ys = all.concat(dots).map((p) => p.y);
  const bottom = H - M.bottom - (failed.length ? BAND : 0);
  const y = d3.scaleLinear().domain(ys.length ? margin(span(d3.extent(ys), 1)) : [0, 1]).nice()
    .range([bottom, M.top]);
  const colour = d3.scaleOrdinal(d3.schemeTableau10);
  const box = d3.select(el).append("div").attr("class", "chart-box");
  const svg = box.append("svg").attr("viewBox", `0 0 ${W} ${H}`).attr("class", "chart");
  svg.append("g").attr("class", "x-axis").attr("transform", `translate(0,${H - M.bottom})`)
    .call(d3.axisBottom(x).ticks(Math.min(8, Math.max(1, x.domain()[1] - x.domain()[0])))
      .tickFormat(d3.format("~d")));
  svg.append("g").attr("class", "y-axis").attr("transform", `translate(${M.left},0)`)
    .call(d3.axisLeft(y).ticks(6));
  svg.append("text").attr("x", (W - M.right + M.left) / 2).attr("y", H - 4)
    .attr("text-anchor", "middle").attr("class", "axis-label").text(xLabel);
  svg.append("text").attr("transform", "rotate(-90)").attr("x", -H / 2).attr("y", 14)
    .attr("text-anchor", "middle").attr("class", "axis-label").text(yLabel);
  if (dots.length || failed.length) drawDots(box, svg, dots, failed, { x, y, colour });
  const mark = svg.selectAll("g.mark").data(marked).join("g").attr("class", "mark");
  mark.append("line").attr("x1", (k) => x(k.x)).attr("x2", (k) => x(k.x))
    .attr("y1", M.top).attr("y2", H - M.bottom);
  mark.append("text").attr("x", (k) => x(k.x) + 3).attr("y", M.top + 8).text((k) => k.label);
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
    svg.append("text").attr("x", W - M.right + 6).attr("y", M.top + 14 * i + 4)
      .attr("fill", c).attr("class", "legend").text(s.name);
  });
}

// Every evaluated program: a dot per scored one (coloured by island), a tick per failed one in the
// strip under the axis, painted on a canvas under the SVG; hovering names the nearest program, a
// click opens it. Why a canvas: 10^5 dots as SVG took 4 s to repaint on every hover (measured
// here, software rendering); the canvas keeps its pixels while the SVG above it changes.
function drawDots(box, svg, dots, failed, { x, y, colour }) {
  const ratio = window.devicePixelRatio || 1;
  const canvas = box.insert("canvas", "svg").attr("class", "chart-dots")
    .attr("width", W * ratio).attr("height", H * ratio);
  const ctx = canvas.node().getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.globalAlpha = 0.5;
  const counts = {};
  for (const [island, points] of [...d3.group(dots, (p) => p.island)].sort((a, b) => a[0] - b[0])) {
    ctx.fillStyle = colour(island);
    ctx.beginPath();
    for (const p of points) {
      ctx.moveTo(x(p.x) + 2.5, y(p.y));
      ctx.arc(x(p.x), y(p.y), 2.5, 0, 2 * Math.PI);
    }
    ctx.fill();
    counts[island] = points.length;
  }
  const base = H - M.bottom - 2;
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "#c0392b";
  ctx.beginPath();
  for (const p of failed) {
    ctx.moveTo(x(p.x), base);
    ctx.lineTo(x(p.x), base - 7);
  }
  ctx.stroke();
  canvas.attr("data-dots", dots.length).attr("data-failed", failed.length)
    .attr("data-islands", JSON.stringify(counts));
  if (failed.length) {
    svg.append("text").attr("class", "axis-label failed-label").attr("x", M.left - 6)
      .attr("y", base - 1).attr("text-anchor", "end").text("failed");
  }
  const points = dots.map((p) => [x(p.x), y(p.y), p])
    .concat(failed.map((p) => [x(p.x), base - 3, p]));
  let finder = null; // built on first use: a quadtree of 10^5 points takes tens of ms
  const hover = svg.append("g").attr("class", "hover").style("display", "none");
  hover.append("circle").attr("r", 5);
  const label = hover.append("text").attr("dy", -8);
  const nearest = (event) => {
    finder = finder || d3.quadtree(points, (q) => q[0], (q) => q[1]);
    const [mx, my] = d3.pointer(event);
    return finder.find(mx, my, 12) || null;
  };
  svg.append("rect").attr("class", "hit").attr("x", M.left).attr("y", M.top)
    .attr("width", W - M.left - M.right).attr("height", H - M.bottom - M.top)
    .on("pointermove", (event) => {
      const hit = nearest(event);
      hover.style("display", hit ? null : "none");
      if (!hit) return;
      const p = hit[2];
      hover.attr("transform", `translate(${hit[0]},${hit[1]})`);
      label.attr("text-anchor", hit[0] > W / 2 ? "end" : "start")
        .text(`#${p.program_id} ${p.y === undefined ? "failed" : p.y} @ ${p.x}`);
    })
    .on("pointerleave", () => hover.style("display", "none"))
    .on("click", (event) => {
      const hit = nearest(event);
      if (hit) location.hash = `#/program/${hit[2].program_id}`;
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
