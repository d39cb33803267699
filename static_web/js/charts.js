// Time-series charts on uPlot (vendored in /vendor/uplot, MIT licence): several series on
// one time axis, drag to zoom, wheel to zoom, buttons to zoom and pan by keyboard,
// double-click or "Reset" to see everything, an optional shaded band between two series,
// optional shaded time intervals (an alert rule's backtest), and annotations: a shaded
// range or a vertical line each, their text listed under the chart and shown on hover.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { el } from "./dom.js";
import { formatTime } from "./format.js";

export const PALETTE = ["#1f5fbf", "#d1495b", "#2a9d8f", "#e9a13b", "#6a4c93", "#3d8b37", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];

/** A group of charts whose x ranges and cursors move together. */
export class ChartGroup {
  constructor(key = "dtbase") {
    this.key = key;
    this.charts = [];
    this.syncing = false;
  }

  add(chart) {
    this.charts.push(chart);
  }

  /** Apply an x range to every chart but the one it came from. */
  setRange(source, min, max) {
    if (this.syncing) return;
    this.syncing = true;
    try {
      for (const chart of this.charts) if (chart.plot !== source) chart.plot.setScale("x", { min, max });
    } finally {
      this.syncing = false;
    }
  }

  destroy() {
    for (const chart of this.charts) chart.destroy();
    this.charts = [];
  }
}

function wheelZoomPlugin(factor = 0.8) {
  return {
    hooks: {
      ready: (u) => {
        u.over.addEventListener(
          "wheel",
          (event) => {
            if (!(event.ctrlKey || event.shiftKey || event.metaKey) || event.deltaY === 0) return;
            event.preventDefault();
            const { left } = u.cursor;
            const at = u.posToVal(left ?? u.over.clientWidth / 2, "x");
            const { min, max } = u.scales.x;
            const scale = event.deltaY < 0 ? factor : 1 / factor;
            u.setScale("x", { min: at - (at - min) * scale, max: at + (max - at) * scale });
          },
          { passive: false },
        );
      },
    },
  };
}

function seriesRange(data) {
  const xs = data[0];
  return xs.length ? { min: xs[0], max: xs[xs.length - 1] } : { min: Date.now() / 1000 - 3600, max: Date.now() / 1000 };
}

const ANNOTATION_FILL = "rgba(233, 161, 59, 0.22)";
const ANNOTATION_LINE = "#b36b00";

/** Annotations behind the lines: a range shaded, an instant as a dashed vertical line. */
function drawAnnotations(u, annotations) {
  if (!annotations.length) return;
  const { left, top, width, height } = u.bbox;
  u.ctx.save();
  for (const a of annotations) {
    const x0 = u.valToPos(a.from, "x", true);
    if (a.to != null && a.to > a.from) {
      const from = Math.max(left, x0);
      const to = Math.min(left + width, u.valToPos(a.to, "x", true));
      u.ctx.fillStyle = ANNOTATION_FILL;
      if (to > from) u.ctx.fillRect(from, top, Math.max(1, to - from), height);
    } else if (x0 >= left && x0 <= left + width) {
      u.ctx.strokeStyle = ANNOTATION_LINE;
      u.ctx.lineWidth = 2;
      u.ctx.setLineDash([6, 4]);
      u.ctx.beginPath();
      u.ctx.moveTo(x0, top);
      u.ctx.lineTo(x0, top + height);
      u.ctx.stroke();
    }
  }
  u.ctx.restore();
}

/** The annotations as a list under the chart: when, and what. */
function annotationList(annotations) {
  const when = (a) => (a.to != null && a.to > a.from ? `${formatTime(a.from * 1000)} – ${formatTime(a.to * 1000)}` : formatTime(a.from * 1000));
  return el(
    "ul",
    { class: "chart-annotations", "aria-label": "Annotations" },
    annotations.map((a) => el("li", {}, el("span", { class: "muted", text: `${when(a)}: ` }), el("span", { text: a.text }))),
  );
}

/**
 * Draw a chart.
 * @param {HTMLElement} container where the chart card goes
 * @param {{title: string, yLabel?: string, note?: string,
 *          series: Array<{label: string, points: Array<[number, number|null]>, color?: string, dash?: number[], width?: number, fill?: string, points_only?: boolean}>,
 *          band?: {upper: number, lower: number, fill: string},
 *          shade?: Array<[number, number]>, shadeFill?: string,
 *          annotations?: Array<{from: number, to: number|null, text: string}>,
 *          group?: ChartGroup, height?: number,
 *          onRangeChange?: (min: number, max: number, chart) => void}} spec points are [unix seconds, value];
 *          `onRangeChange` is called (debounced) after a zoom or pan, e.g. to fetch finer data.
 */
export function timeSeriesChart(container, spec) {
  const titleId = `chart-${Math.random().toString(36).slice(2, 9)}`;
  // The y axis's label is drawn on the canvas; data-y-label keeps it readable.
  const plotBox = el("div", { class: "chart", role: "img", "aria-labelledby": titleId, "data-y-label": spec.yLabel || "" });
  const buttons = {
    zoomIn: el("button", { type: "button", class: "secondary small", text: "Zoom in" }),
    zoomOut: el("button", { type: "button", class: "secondary small", text: "Zoom out" }),
    panLeft: el("button", { type: "button", class: "secondary small", text: "◀ Earlier", "aria-label": "Pan earlier" }),
    panRight: el("button", { type: "button", class: "secondary small", text: "Later ▶", "aria-label": "Pan later" }),
    reset: el("button", { type: "button", class: "secondary small", text: "Reset zoom" }),
  };
  const card = el(
    "figure",
    { class: "chart-card", dataset: { chart: spec.title } },
    el("h3", { id: titleId, text: spec.title }),
    el("div", { class: "chart-tools", role: "group", "aria-label": `Zoom and pan ${spec.title}` }, Object.values(buttons)),
    plotBox,
    spec.note ? el("figcaption", { class: "chart-note", text: spec.note }) : null,
  );
  if (spec.shade) card.dataset.shaded = String(spec.shade.length);
  const annotations = spec.annotations || [];
  if (annotations.length) {
    card.dataset.annotations = String(annotations.length);
    card.append(annotationList(annotations));
  }
  container.append(card);

  const tables = spec.series.map((s) => [s.points.map((p) => p[0]), s.points.map((p) => p[1])]);
  const data = tables.length ? uPlot.join(tables) : [[]];
  const full = seriesRange(data);

  const series = [
    { label: "Time", value: (u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleString()) },
    ...spec.series.map((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const options = {
        label: s.label,
        stroke: color,
        width: s.width ?? 1.5,
        spanGaps: true,
        points: s.points_only ? { show: true, size: 5, fill: color } : { show: !s.no_points && s.points.length < 60, size: 4 },
      };
      if (s.dash) options.dash = s.dash;
      if (s.fill) options.fill = s.fill;
      if (s.points_only) options.paths = () => null;
      return options;
    }),
  ];

  let chart = null;
  let rangeTimer = null;
  const width = Math.max(280, plotBox.clientWidth || container.clientWidth || 600);
  const opts = {
    width,
    height: spec.height || 300,
    series,
    scales: { x: { time: true } },
    axes: [{}, { label: spec.yLabel || "", size: 60 }],
    cursor: { sync: spec.group ? { key: spec.group.key } : undefined, drag: { x: true, y: false } },
    bands: spec.band ? [{ series: [spec.band.upper + 1, spec.band.lower + 1], fill: spec.band.fill }] : [],
    legend: { live: true },
    plugins: [wheelZoomPlugin()],
    hooks: {
      // Shaded intervals [from, to] (unix seconds) behind the lines, across the plot's height.
      drawClear: [
        (u) => {
          if (!spec.shade || !spec.shade.length) return;
          const { left, top, width, height } = u.bbox;
          u.ctx.save();
          u.ctx.fillStyle = spec.shadeFill || "rgba(209, 73, 91, 0.2)";
          for (const [from, to] of spec.shade) {
            const x0 = Math.max(left, u.valToPos(from, "x", true));
            const x1 = Math.min(left + width, u.valToPos(to, "x", true));
            if (x1 > x0) u.ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
          }
          u.ctx.restore();
        },
        (u) => drawAnnotations(u, annotations),
      ],
      // The texts of the annotations under the cursor, as the plot's tooltip.
      setCursor: [
        (u) => {
          if (!annotations.length || u.cursor.left == null || u.cursor.left < 0) return;
          const at = u.posToVal(u.cursor.left, "x");
          const slack = (u.scales.x.max - u.scales.x.min) / 200; // a line is a few pixels wide
          const hit = annotations.filter((a) => at >= a.from - slack && at <= (a.to ?? a.from) + slack);
          u.over.title = hit.map((a) => a.text).join("\n");
        },
      ],
      setScale: [
        (u, key) => {
          if (key !== "x") return;
          // The visible range, for tests and for anyone inspecting the page.
          card.dataset.xRange = `${Math.round(u.scales.x.min)}-${Math.round(u.scales.x.max)}`;
          if (spec.group) spec.group.setRange(u, u.scales.x.min, u.scales.x.max);
          if (spec.onRangeChange && chart) {
            clearTimeout(rangeTimer);
            rangeTimer = setTimeout(() => spec.onRangeChange(u.scales.x.min, u.scales.x.max, chart), 250);
          }
        },
      ],
    },
  };
  const plot = new uPlot(opts, data, plotBox);

  const zoom = (scale) => {
    const { min, max } = plot.scales.x;
    const mid = (min + max) / 2;
    const half = ((max - min) / 2) * scale;
    plot.setScale("x", { min: mid - half, max: mid + half });
  };
  const pan = (fraction) => {
    const { min, max } = plot.scales.x;
    const shift = (max - min) * fraction;
    plot.setScale("x", { min: min + shift, max: max + shift });
  };
  buttons.zoomIn.addEventListener("click", () => zoom(0.5));
  buttons.zoomOut.addEventListener("click", () => zoom(2));
  buttons.panLeft.addEventListener("click", () => pan(-0.25));
  buttons.panRight.addEventListener("click", () => pan(0.25));
  buttons.reset.addEventListener("click", () => plot.setScale("x", full));

  const resize = new ResizeObserver(() => {
    const w = Math.max(280, plotBox.clientWidth);
    if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height: plot.height });
  });
  resize.observe(plotBox);

  chart = {
    plot,
    card,
    full,
    /** Replace every series' points, keeping the visible range. */
    setPoints(pointLists, note) {
      const joined = uPlot.join(pointLists.map((points) => [points.map((p) => p[0]), points.map((p) => p[1])]));
      plot.setData(joined, false);
      plot.redraw();
      if (note !== undefined) {
        const caption = card.querySelector(".chart-note");
        if (caption) caption.textContent = note;
      }
    },
    destroy() {
      clearTimeout(rangeTimer);
      resize.disconnect();
      plot.destroy();
      card.remove();
    },
  };
  if (spec.group) spec.group.add(chart);
  return chart;
}
