// The console's charts: /api/console/charts' series drawn as inline SVG line charts, one per
// named query (a query with several label sets, such as lag per partition, gets a line each).

import { el, svg } from "./dom.js";

const W = 320;
const H = 120;
const PAD = { left: 4, right: 4, top: 8, bottom: 4 };
// Dark enough for 3:1 against white (WCAG's non-text contrast).
const COLOURS = ["#0b5cad", "#a4161a", "#1b5e20", "#6a1b9a", "#8d4a00", "#00646e"];

export function format(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "seconds" || unit === "s") return value < 1 ? `${(value * 1000).toFixed(0)} ms` : `${value.toFixed(2)} s`;
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(1);
}

const clock = (unixS) => new Date(unixS * 1000).toLocaleTimeString();

function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i -= 1) if (points[i][1] !== null) return points[i][1];
  return null;
}

function path(points, x, y) {
  // Runs of samples; a gap where Prometheus had none. A run of one sample is drawn as a dot
  // (a zero-length line with round caps), so a series just begun is still seen.
  const runs = [[]];
  for (const [t, v] of points) {
    if (v === null) {
      if (runs.at(-1).length) runs.push([]);
      continue;
    }
    runs.at(-1).push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  }
  return runs
    .filter((run) => run.length)
    .map((run) => `M${run.join("L")}${run.length === 1 ? "h0" : ""}`)
    .join("");
}

function chart(name, series, start, end) {
  const unit = series[0].unit;
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
  const top = Math.max(1e-9, ...values) * 1.1;
  // From the first sample on: a stack started a minute ago gets a minute-wide chart, not a
  // dot at the right edge of fifteen minutes.
  const sampled = series.flatMap((s) => s.points.filter((p) => p[1] !== null).map((p) => p[0]));
  const from = sampled.length ? Math.min(...sampled) : start;
  const x = (t) => PAD.left + ((t - from) / Math.max(1, end - from)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const labelOf = (s) => Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  const now = series.map((s) => `${labelOf(s) || "latest"} ${format(lastValue(s.points), unit)}`).join("; ");
  const highest = format(values.length ? Math.max(...values) : null, unit);
  const span = `${clock(from)} to ${clock(end)}, highest ${highest}`;
  const title = `${name}: ${now}; ${span}`;
  const drawing = svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart", preserveAspectRatio: "none" },
    svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
    series.map((s, i) =>
      svg("path", { d: path(s.points, x, y), fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 2, "stroke-linecap": "round" }),
    ),
  );
  const legend =
    series.length > 1
      ? el(
          "ul",
          { class: "chart-legend" },
          series.map((s, i) =>
            el("li", {}, el("span", { class: "swatch", "data-colour": i % COLOURS.length }), labelOf(s)),
          ),
        )
      : null;
  return el(
    "figure",
    { class: "chart-box" },
    el("figcaption", {}, el("strong", {}, name), " ", el("span", { class: "latest" }, now)),
    drawing,
    legend,
    el("p", { class: "hint" }, `${span}. ${series[0].help}`),
  );
}

/** Replaces `into`'s children with one chart per named query. */
export function drawCharts(into, charts) {
  const byName = new Map();
  for (const s of charts.series) {
    if (!byName.has(s.name)) byName.set(s.name, []);
    byName.get(s.name).push(s);
  }
  into.replaceChildren(...[...byName].map(([name, series]) => chart(name, series, charts.start, charts.end)));
}
