// Two SVG charts drawn by hand: a multi-series line chart over time and a scatter plot.
// Each is a plain function of its data, redrawn whole on every refresh.

import { el, replaceChildren } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

/**
 * Lines over time. series: [{name, colour, points: [[timeMs, value|null], ...]}].
 * A legend lists every series with its latest value, so the chart is readable without colour.
 */
export function lineChart(box, series, { unit = "" } = {}) {
  const drawn = series.filter((s) => s.points.some(([, v]) => v !== null));
  if (!drawn.length) {
    replaceChildren(box, el("p", { class: "chart-empty" }, "no data yet"));
    return;
  }
  const width = 560;
  const height = 220;
  const pad = { left: 48, right: 12, top: 10, bottom: 26 };
  const times = drawn.flatMap((s) => s.points.map(([t]) => t));
  const t0 = Math.min(...times);
  const t1 = Math.max(t0 + 1000, ...times);
  const top = niceMax(Math.max(0, ...drawn.flatMap((s) => s.points.map(([, v]) => v ?? 0))));
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((share) => {
    const value = top * share;
    return svg("g", { class: "axis" },
      svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(value),
        y2: y(value) }),
      svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" },
        Number(value.toPrecision(3)).toString()));
  });
  const ticks = [t0, (t0 + t1) / 2, t1].map((t, i) =>
    svg("text", { x: x(t), y: height - 6, "text-anchor": ["start", "middle", "end"][i],
      class: "axis" }, clock(t)));
  const lines = drawn.map((s) => {
    const segments = [];
    let current = [];
    for (const [t, v] of s.points) {
      if (v === null) {
        if (current.length) segments.push(current);
        current = [];
      } else current.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (current.length) segments.push(current);
    return svg("g", {},
      segments.map((points) => points.length === 1
        ? svg("circle", { cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 2.5,
          fill: s.colour })
        : svg("polyline", { points: points.join(" "), fill: "none", stroke: s.colour,
          "stroke-width": 2, "stroke-linejoin": "round" })));
  });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Line chart of ${drawn.map((s) => s.name).join(", ")}` },
  grid, svg("g", { class: "axis" }, ticks), lines);
  const legend = el("ul", { class: "legend" }, drawn.map((s) => {
    const last = [...s.points].reverse().find(([, v]) => v !== null);
    const latest = last ? Number(last[1].toPrecision(3)) : "–";
    return el("li", {}, el("span", { class: "swatch", style: `background:${s.colour}` }),
      `${s.name}: ${latest}${unit}`);
  }));
  replaceChildren(box, chart, legend);
}

/**
 * A scatter plot of points [{x, y, colour, title}], plus optional marks
 * [{x, y, label}] drawn on top (a placed prompt). Returns nothing; redraws `box`.
 */
export function scatter(box, points, marks = []) {
  const width = 640;
  const height = 440;
  const pad = 16;
  const xs = points.map((p) => p.x).concat(marks.map((m) => m.x));
  const ys = points.map((p) => p.y).concat(marks.map((m) => m.y));
  if (!xs.length) {
    replaceChildren(box, el("p", { class: "chart-empty" }, "no utterances to show"));
    return;
  }
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const spanX = x1 - x0 || 1;
  const spanY = y1 - y0 || 1;
  const sx = (v) => pad + ((v - x0) / spanX) * (width - 2 * pad);
  const sy = (v) => height - pad - ((v - y0) / spanY) * (height - 2 * pad);
  const dots = points.map((p) => svg("circle", {
    cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 3.2, fill: p.colour,
    "fill-opacity": 0.75,
  }, svg("title", {}, p.title)));
  const marked = marks.map((m) => svg("g", { class: "prompt" },
    svg("circle", { class: "prompt-mark", cx: sx(m.x), cy: sy(m.y), r: 7 }),
    svg("text", { class: "prompt-label", x: Math.min(sx(m.x) + 10, width - 120),
      y: sy(m.y) - 8 }, m.label)));
  replaceChildren(box, svg("svg", { viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" },
    dots, marked));
}
