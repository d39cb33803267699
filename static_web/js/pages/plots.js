// Time-series plots: one chart per measure, one line per sensor; long ranges are bucketed
// by the database (sensor-readings-aggregated) so a year of minute data draws quickly.

import { post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, $$, replace, withLoading, errorBox, bindForm, queryParams, setQueryParams } from "../dom.js";
import { toLocalInput } from "../format.js";
import { measureLabel } from "../catalog.js";
import { sensorPicker, initRange, readRange } from "../pickers.js";
import { timeSeriesChart, ChartGroup } from "../charts.js";

const RAW_LIMIT_SECONDS = 3 * 86400;
const TARGET_BUCKETS = 1500;
const INTERVALS = [
  ["1min", 60],
  ["5min", 300],
  ["15min", 900],
  ["30min", 1800],
  ["1h", 3600],
  ["3h", 10800],
  ["6h", 21600],
  ["12h", 43200],
  ["1d", 86400],
  ["7d", 604800],
];

let group = null;

/** The bucket interval for a range: raw up to three days, else about TARGET_BUCKETS buckets. */
export function chooseResolution(spanSeconds, requested) {
  if (requested === "raw") return null;
  if (requested !== "auto") return requested;
  if (spanSeconds <= RAW_LIMIT_SECONDS) return null;
  const wanted = spanSeconds / TARGET_BUCKETS;
  const found = INTERVALS.find(([, seconds]) => seconds >= wanted);
  return (found || INTERVALS[INTERVALS.length - 1])[0];
}

/** The browser's IANA time zone, so daily buckets are the viewer's local days; none (UTC
 * buckets) when the browser cannot tell. */
function browserZone() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone && zone !== "Etc/Unknown" ? { timezone: zone } : {};
}

const toNumber = (value) => (typeof value === "boolean" ? (value ? 1 : 0) : typeof value === "number" ? value : null);

async function fetchSeries(sensor, measure, from, to, interval, aggregation) {
  if (!interval) {
    const readings = await post("/sensor/sensor-readings", {
      unique_identifier: sensor.unique_identifier,
      measure_name: measure.name,
      dt_from: from.toISOString(),
      dt_to: to.toISOString(),
    });
    return readings.map((r) => [new Date(r.timestamp).getTime() / 1000, toNumber(r.value)]);
  }
  // Booleans can only be bucketed by an order-based aggregation.
  const agg = measure.datatype === "boolean" && !["first", "last", "count"].includes(aggregation) ? "last" : aggregation;
  const buckets = await post("/sensor/sensor-readings-aggregated", {
    unique_identifier: sensor.unique_identifier,
    measure_name: measure.name,
    dt_from: from.toISOString(),
    dt_to: to.toISOString(),
    interval,
    aggregation: agg,
    ...browserZone(),
  });
  return buckets.map((b) => [new Date(b.timestamp).getTime() / 1000, toNumber(b.value)]);
}

/** The annotations of the sensors (and of the assets they are attached to) in the range,
 * each once, as chart annotations. */
export async function fetchAnnotations(sensors, from, to) {
  const lists = await Promise.all(
    sensors.map((sensor) =>
      post("/annotation/list-annotations", { unique_identifier: sensor.unique_identifier, dt_from: from.toISOString(), dt_to: to.toISOString() }),
    ),
  );
  const seen = new Map();
  for (const a of lists.flat()) seen.set(a.id, a);
  const seconds = (iso) => new Date(iso).getTime() / 1000;
  return [...seen.values()].map((a) => ({
    from: seconds(a.dt_from),
    to: a.dt_to ? seconds(a.dt_to) : null,
    text: `${a.asset ?? a.unique_identifier}: ${a.text}`,
  }));
}

async function draw({ sensors, measures, from, to, resolution, aggregation }) {
  const region = $("#charts");
  if (group) group.destroy();
  group = new ChartGroup("plots");
  replace(region);
  const interval = chooseResolution((to - from) / 1000, resolution);
  const started = performance.now();
  const [results, annotations] = await withLoading(
    region,
    Promise.all([
      Promise.all(
        measures.map((measure) =>
          Promise.all(sensors.map((sensor) => fetchSeries(sensor, measure, from, to, interval, aggregation))),
        ),
      ),
      fetchAnnotations(sensors, from, to),
    ]),
    interval ? `Loading ${interval} buckets…` : "Loading readings…",
  );
  let points = 0;
  const describe = (count, chosen) => {
    const how = chosen ? `${chosen} ${aggregation === "mean" ? "means" : `${aggregation} values`}` : "every reading";
    return count ? `${count.toLocaleString()} points, ${how}.` : "No readings in this range.";
  };
  measures.forEach((measure, mi) => {
    const series = sensors.map((sensor, si) => ({ label: sensor.unique_identifier, points: results[mi][si] }));
    const count = series.reduce((sum, s) => sum + s.points.length, 0);
    points += count;
    let shown = interval;
    let fetched = null; // the range of finer data on show, or null for the original data
    let generation = 0;
    // Zooming into bucketed data fetches finer buckets (or every reading) for the visible range.
    const onRangeChange = resolution !== "auto" ? undefined : async (min, max, chart) => {
      const { full } = chart;
      if (min <= full.min && max >= full.max) {
        if (fetched) {
          generation += 1;
          fetched = null;
          shown = interval;
          chart.setPoints(series.map((s) => s.points), describe(count, interval));
        }
        return;
      }
      const wanted = chooseResolution(max - min, "auto");
      const covered = fetched ? min >= fetched.min && max <= fetched.max : true;
      if (wanted === shown && covered) return;
      const mine = ++generation;
      // Fetch a little either side so small pans need no new request.
      const pad = (max - min) * 0.5;
      const range = { min: Math.max(min - pad, full.min), max: Math.min(max + pad, full.max) };
      try {
        const lists = await Promise.all(
          sensors.map((sensor) => fetchSeries(sensor, measure, new Date(range.min * 1000), new Date(range.max * 1000 + 1000), wanted, aggregation)),
        );
        if (mine !== generation) return;
        shown = wanted;
        fetched = range;
        const total = lists.reduce((sum, l) => sum + l.length, 0);
        chart.setPoints(lists, `${describe(total, wanted)} Zoomed in; “Reset zoom” shows the whole range.`);
      } catch (error) {
        console.warn("Could not fetch finer data", error);
      }
    };
    // A count is of readings, whatever the measure's units.
    const counting = interval && aggregation === "count";
    timeSeriesChart(region, {
      title: counting ? `${measure.name} (readings per ${interval})` : measureLabel(measure),
      yLabel: counting ? "count" : measure.units || "",
      series,
      group,
      note: describe(count, interval),
      annotations,
      onRangeChange,
    });
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  return `${measures.length} chart${measures.length === 1 ? "" : "s"}, ${points.toLocaleString()} points, drawn in ${seconds} s${interval ? ` (${interval} buckets)` : ""}.`;
}

async function main() {
  await startPage("plots");
  const params = queryParams();
  initRange($("#p-from"), $("#p-to"), { from: params.get("from"), to: params.get("to"), days: 7 });
  if (params.get("resolution")) $("#p-resolution").value = params.get("resolution");
  if (params.get("aggregation")) $("#p-aggregation").value = params.get("aggregation");
  const form = $("#plot-form");

  for (const button of $$("[data-range-days]", form)) {
    button.addEventListener("click", () => {
      const end = new Date(Date.now() + 60e3);
      $("#p-to").value = toLocalInput(end);
      $("#p-from").value = toLocalInput(new Date(end.getTime() - Number(button.dataset.rangeDays) * 86400e3));
    });
  }

  let picker;
  try {
    picker = await withLoading(
      form,
      sensorPicker({
        typeSelect: $("#p-type"),
        sensorsBox: $("#p-sensors"),
        measuresBox: $("#p-measures"),
        measureFilter: (m) => m.datatype !== "string",
        initial: { type: params.get("type"), sensors: params.getAll("sensor"), measures: params.getAll("measure") },
      }),
    );
  } catch (error) {
    form.prepend(errorBox(error));
    return;
  }

  bindForm(
    form,
    async () => {
      const { type, sensors, measures } = picker.selection();
      if (!type) throw new Error("Choose a sensor type.");
      if (!sensors.length) throw new Error("Choose at least one sensor.");
      if (!measures.length) throw new Error("Choose at least one measure.");
      const { from, to } = readRange($("#p-from"), $("#p-to"));
      const resolution = $("#p-resolution").value;
      const aggregation = $("#p-aggregation").value;
      setQueryParams({
        type: type.name,
        sensor: sensors.map((s) => s.unique_identifier),
        measure: measures.map((m) => m.name),
        from: from.toISOString(),
        to: to.toISOString(),
        resolution: resolution === "auto" ? "" : resolution,
        aggregation: aggregation === "mean" ? "" : aggregation,
      });
      return draw({ sensors, measures, from, to, resolution, aggregation });
    },
    { busyText: "Plotting…" },
  );

  if (params.get("sensor") && params.get("from")) form.requestSubmit();
}

main();
