// Models: runs filtered by model, scenario and time (the last week's on arrival); a run's
// metrics, where its forecast starts and why, and its forecast with its bounds as a shaded
// band and the sensor's observed readings over it.

import { post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, fillSelect, confirmDialog, queryParams, setQueryParams } from "../dom.js";
import { formatTime, timeZoneName } from "../format.js";
import { listModels, listScenarios } from "../catalog.js";
import { initRange, readRange } from "../pickers.js";
import { timeSeriesChart, ChartGroup } from "../charts.js";
import { metricsView, forecastStartView } from "../forecast-facts.js";

const state = { scenarios: [], runs: [], group: null };
const MEAN = "Mean ";
const UPPER = "Upper Bound ";
const LOWER = "Lower Bound ";

const toPoints = (values) =>
  (values || []).map((v) => [new Date(v.timestamp).getTime() / 1000, typeof v.value === "boolean" ? Number(v.value) : typeof v.value === "number" ? v.value : null]);

/**
 * Group a run's products into forecasts: `{base, mean, upper, lower}` for every "Mean X"
 * (or X itself when the run names its sensor measure X), and the rest as plain outputs.
 */
export function groupProducts(products, sensorMeasureName = null) {
  const keys = Object.keys(products);
  const bases = new Set(keys.filter((k) => k.startsWith(MEAN)).map((k) => k.slice(MEAN.length)));
  if (sensorMeasureName && keys.includes(sensorMeasureName)) bases.add(sensorMeasureName);
  const used = new Set();
  const forecasts = [...bases].map((base) => {
    const meanKey = keys.includes(MEAN + base) ? MEAN + base : base;
    const group = { base, mean: meanKey, upper: keys.includes(UPPER + base) ? UPPER + base : null, lower: keys.includes(LOWER + base) ? LOWER + base : null };
    [group.mean, group.upper, group.lower].forEach((k) => k && used.add(k));
    return group;
  });
  const others = keys.filter((k) => !used.has(k));
  return { forecasts, others };
}

/**
 * The run as list-model-runs gives it (time, scenario, metrics). A run opened from a link
 * (`?run=`) may lie outside the listed window: then it is looked up over all time.
 */
async function describeRun(run) {
  const listed = state.runs.find((r) => r.id === run.id);
  if (listed) return listed;
  if (!run.model_name) return run;
  const all = await post("/model/list-model-runs", {
    model_name: run.model_name,
    dt_from: "1970-01-01T00:00:00Z",
    dt_to: new Date(Date.now() + 86400e3).toISOString(),
  });
  return all.find((r) => r.id === run.id) || run;
}

async function showRun(run) {
  const section = $("#run-section");
  section.hidden = false;
  const heading = $("#run-heading");
  heading.textContent = `Run #${run.id}`;
  setQueryParams({ ...Object.fromEntries(queryParams()), run: run.id });
  const details = $("#run-details");
  const chartsRegion = $("#run-charts");
  if (state.group) state.group.destroy();
  state.group = new ChartGroup("run");
  replace(chartsRegion);
  try {
    const [products, link, described] = await withLoading(
      details,
      Promise.all([post("/model/get-model-run", { run_id: run.id }), post("/model/get-model-run-sensor-measure", { run_id: run.id }), describeRun(run)]),
      "Loading the run…",
    );
    run = described;
    const sensorId = link.sensor_unique_id;
    const measure = link.sensor_measure;
    heading.textContent = `Run #${run.id}${run.model_name ? ` of ${run.model_name}` : ""}${measure ? `: ${measure.name}` : ""}`;
    replace(
      details,
      el(
        "dl",
        { class: "run-facts" },
        run.model_name ? [el("dt", { text: "Model" }), el("dd", { text: run.model_name })] : null,
        run.scenario_description !== undefined ? [el("dt", { text: "Scenario" }), el("dd", { text: run.scenario_description ?? "" })] : null,
        run.time_created ? [el("dt", { text: "Created" }), el("dd", { text: `${formatTime(run.time_created)} (${timeZoneName()})` })] : null,
        [el("dt", { text: "Sensor" }), el("dd", { text: sensorId ? `${sensorId}${measure ? `, ${measure.name}${measure.units ? ` (${measure.units})` : ""}` : ""}` : "none" })],
        [el("dt", { text: "Products" }), el("dd", { text: Object.keys(products).join(", ") || "none" })],
      ),
    );
    const { forecasts, others } = groupProducts(products, measure ? measure.name : null);
    const main = forecasts.find((f) => measure && f.base === measure.name) || forecasts[0];
    const meanTimes = main ? (products[main.mean] || []).map((v) => new Date(v.timestamp).getTime()) : [];
    details.append(
      ...[metricsView(run.metrics, measure ? measure.units || "" : ""), forecastStartView(meanTimes, run.metrics)].filter(Boolean),
    );
    if (!forecasts.length && !others.length) {
      chartsRegion.append(el("p", { class: "muted", text: "This run has no products to draw." }));
      return;
    }
    for (const forecast of forecasts) {
      const mean = toPoints(products[forecast.mean]);
      const series = [];
      let band;
      if (forecast.upper && forecast.lower) {
        series.push({ label: "Upper bound", points: toPoints(products[forecast.upper]), color: "rgba(31,95,191,0.45)", width: 1, no_points: true });
        series.push({ label: "Lower bound", points: toPoints(products[forecast.lower]), color: "rgba(31,95,191,0.45)", width: 1, no_points: true });
        band = { upper: 0, lower: 1, fill: "rgba(31,95,191,0.15)" };
      }
      series.push({ label: "Mean", points: mean, color: "#1f5fbf", width: 2 });
      let observedCount = 0;
      if (sensorId && measure && mean.length && (forecast.base === measure.name || forecasts.length === 1)) {
        const first = mean[0][0];
        const last = mean[mean.length - 1][0];
        const span = Math.max(last - first, 3600);
        const readings = await withLoading(
          chartsRegion,
          post("/sensor/sensor-readings", {
            unique_identifier: sensorId,
            measure_name: measure.name,
            dt_from: new Date((first - span) * 1000).toISOString(),
            dt_to: new Date(last * 1000).toISOString(),
          }),
          "Loading observed readings…",
        );
        const observed = toPoints(readings);
        observedCount = observed.length;
        series.push({ label: `Observed ${sensorId}`, points: observed, color: "#d1495b", width: 1.5 });
      }
      timeSeriesChart(chartsRegion, {
        title: `Forecast of ${forecast.base}`,
        yLabel: measure && forecast.base === measure.name ? measure.units || "" : "",
        series,
        band,
        group: state.group,
        height: 340,
        note: `${mean.length} forecast points${band ? " with the bounds shaded" : ""}${sensorId ? `, ${observedCount} observed readings` : ""}.`,
      });
    }
    if (others.length) {
      timeSeriesChart(chartsRegion, {
        title: "Other outputs",
        series: others.map((key) => ({ label: key, points: toPoints(products[key]) })),
        group: state.group,
      });
    }
  } catch (error) {
    replace(details, errorBox(error));
  }
}

function renderRuns(runs) {
  state.runs = runs;
  replace(
    $("#runs"),
    table(
      `${runs.length} run${runs.length === 1 ? "" : "s"}, newest first (times in ${timeZoneName()})`,
      [
        { label: "Run", className: "num", render: (r) => `#${r.id}` },
        { label: "Created", render: (r) => el("time", { datetime: r.time_created, text: formatTime(r.time_created) }) },
        { label: "Scenario", render: (r) => r.scenario_description ?? "" },
        { label: "Sensor", render: (r) => r.sensor_unique_id ?? "" },
        { label: "Sensor measure", render: (r) => (r.sensor_measure ? r.sensor_measure.name : "") },
        {
          label: "Actions",
          render: (r) =>
            el(
              "div",
              { class: "actions" },
              el("button", { type: "button", class: "small", text: "Show forecast", "aria-label": `Show run ${r.id}`, onclick: () => showRun(r) }),
              el("button", { type: "button", class: "secondary small", text: "Delete", "data-editor-only": "", "aria-label": `Delete run ${r.id}`, onclick: () => deleteRun(r) }),
            ),
        },
      ],
      runs,
      { empty: "No model runs found for these filters." },
    ),
  );
}

async function deleteRun(run) {
  if (!(await confirmDialog(`Delete run #${run.id} and its products?`))) return;
  try {
    await post("/model/delete-model-run", { run_id: run.id });
    renderRuns(state.runs.filter((r) => r.id !== run.id));
    $("#run-section").hidden = true;
  } catch (error) {
    $("#runs").prepend(errorBox(error));
  }
}

function fillScenarios(modelName) {
  const descriptions = state.scenarios.filter((s) => s.model_name === modelName).map((s) => s.description ?? "");
  fillSelect($("#m-scenario"), descriptions.map((d) => ({ value: d, label: d || "(no description)" })), { placeholder: "Any scenario" });
}

async function main() {
  await startPage("models");
  const params = queryParams();
  initRange($("#m-from"), $("#m-to"), { from: params.get("from"), to: params.get("to"), days: 7 });
  const form = $("#runs-form");
  try {
    const [models, scenarios] = await withLoading(form, Promise.all([listModels(), listScenarios()]));
    state.scenarios = scenarios;
    fillSelect($("#m-model"), models.map((m) => m.name), { placeholder: models.length ? "" : "No models yet" });
    if (params.get("model")) $("#m-model").value = params.get("model");
    fillScenarios($("#m-model").value);
    if (params.get("scenario")) $("#m-scenario").value = params.get("scenario");
  } catch (error) {
    form.prepend(errorBox(error));
  }
  $("#m-model").addEventListener("change", () => fillScenarios($("#m-model").value));

  bindForm(
    form,
    async () => {
      const modelName = $("#m-model").value;
      if (!modelName) throw new Error("Choose a model.");
      const { from, to } = readRange($("#m-from"), $("#m-to"));
      const body = { model_name: modelName, dt_from: from.toISOString(), dt_to: to.toISOString() };
      const scenario = $("#m-scenario").value;
      if (scenario) body.scenario = scenario;
      setQueryParams({ model: modelName, scenario, from: body.dt_from, to: body.dt_to });
      const runs = await withLoading($("#runs"), post("/model/list-model-runs", body));
      runs.sort((a, b) => new Date(b.time_created) - new Date(a.time_created) || b.id - a.id);
      renderRuns(runs);
      return "";
    },
    { busyText: "Listing…" },
  );

  // The last week's runs of the chosen model show on arrival.
  if ($("#m-model").value) form.requestSubmit();
  const runId = Number(params.get("run"));
  if (runId) showRun({ id: runId, model_name: params.get("model") || "" });
}

main();
