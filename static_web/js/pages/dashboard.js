// Dashboard: counts (firing alerts first), the latest reading of every sensor, recent
// service and model runs.

import { get, post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, clip, withLoading, errorBox } from "../dom.js";
import { formatValue, formatTime, timeAgo, timeZoneName } from "../format.js";
import {
  listSensorTypes,
  listMeasures,
  listSensorsWithTypes,
  listLocationSchemas,
  listModels,
  listAllModelRuns,
  measureKey,
} from "../catalog.js";

const RECENT_DAYS = 30;

function stat(label, value, href) {
  return el(
    "div",
    { class: "stat", dataset: { stat: label.toLowerCase().replace(/\s+/g, "-") } },
    el("a", { href }, el("span", { class: "number", text: value }), el("span", { class: "label", text: label })),
  );
}

async function loadCounts(region) {
  const since = new Date(Date.now() - RECENT_DAYS * 86400e3);
  const [types, schemas, models, serviceRuns, firing] = await Promise.all([
    listSensorTypes(),
    listLocationSchemas(),
    listModels(),
    post("/service/list-runs", {}),
    post("/alert/list-alerts", { state: "firing" }),
  ]);
  const [sensors, locationLists, runs] = await Promise.all([
    listSensorsWithTypes(types),
    Promise.all(schemas.map((s) => post("/location/list-locations", { schema_name: s.name }))),
    listAllModelRuns(since, new Date(), models),
  ]);
  const locations = locationLists.reduce((sum, list) => sum + list.length, 0);
  const alerts = stat("Firing alerts", firing.length, "/alerts.html");
  if (firing.length) alerts.classList.add("alerting");
  replace(
    region,
    alerts,
    stat("Sensors", sensors.length, "/sensors.html"),
    stat("Sensor types", types.length, "/sensors.html"),
    stat("Locations", locations, "/locations.html"),
    stat("Models", models.length, "/models.html"),
    stat(`Model runs (${RECENT_DAYS} days)`, runs.length, "/models.html"),
    stat("Service runs", serviceRuns.length, "/services.html"),
  );
  return { runs, serviceRuns };
}

function renderLatest(region, readings, datatypes, staleAfterSeconds) {
  const now = Date.now();
  const rows = readings
    .slice()
    .sort((a, b) => a.unique_identifier.localeCompare(b.unique_identifier) || a.measure_name.localeCompare(b.measure_name));
  replace(
    region,
    table(
      `Latest reading of every sensor and measure (times in ${timeZoneName()})`,
      [
        { label: "Sensor", render: (r) => r.unique_identifier },
        { label: "Measure", render: (r) => r.measure_name },
        {
          label: "Value",
          className: "num",
          render: (r) => {
            const datatype = datatypes.get(measureKey(r.measure_name, r.units));
            return el("span", { class: `value-${datatype || "unknown"}`, dataset: { datatype: datatype || "" }, text: formatValue(r.value, datatype) });
          },
        },
        { label: "Units", render: (r) => r.units ?? "" },
        { label: "Received", render: (r) => el("time", { datetime: r.timestamp, text: formatTime(r.timestamp) }) },
        {
          label: "Age",
          render: (r) => {
            const stale = now - new Date(r.timestamp).getTime() > staleAfterSeconds * 1000;
            return el(
              "span",
              { class: "age" },
              `${timeAgo(r.timestamp, now)} `,
              el("span", { class: `badge ${stale ? "stale" : "fresh"}`, text: stale ? "stale" : "fresh" }),
            );
          },
        },
      ],
      rows,
      { empty: "No readings yet. Add a sensor and post readings to see them here." },
    ),
  );
}

function renderServiceRuns(region, runs) {
  const recent = runs.slice().sort((a, b) => new Date(b.timestamp) - new Date(a.timestamp)).slice(0, 8);
  replace(
    region,
    table(
      "Newest first",
      [
        { label: "When", render: (r) => el("time", { datetime: r.timestamp, title: formatTime(r.timestamp), text: timeAgo(r.timestamp) }) },
        { label: "Service", render: (r) => clip(r.service_name, "a", { href: `/services.html?service=${encodeURIComponent(r.service_name)}` }) },
        { label: "Parameter set", render: (r) => r.parameter_set_name ?? "ad hoc" },
        {
          label: "Status",
          render: (r) =>
            r.status === "running"
              ? el("span", { class: "badge", text: "running" })
              : el("span", { class: `badge ${r.status !== "failed" && r.response_status_code < 400 ? "fresh" : "bad"}`, text: String(r.response_status_code) }),
        },
      ],
      recent,
      { empty: "No service has run yet." },
    ),
  );
}

function renderModelRuns(region, runs) {
  replace(
    region,
    table(
      `Last ${RECENT_DAYS} days, newest first`,
      [
        { label: "Created", render: (r) => el("time", { datetime: r.time_created, title: formatTime(r.time_created), text: timeAgo(r.time_created) }) },
        { label: "Model", render: (r) => r.model_name },
        { label: "Scenario", render: (r) => r.scenario_description ?? "" },
        { label: "Sensor", render: (r) => r.sensor_unique_id ?? "" },
        {
          label: "Run",
          render: (r) => el("a", { href: `/models.html?model=${encodeURIComponent(r.model_name)}&run=${r.id}`, text: `#${r.id}` }),
        },
      ],
      runs.slice(0, 8),
      { empty: "No model run in this period." },
    ),
  );
}

async function main() {
  await startPage("dashboard");
  const countsRegion = $("#counts");
  const latestRegion = $("#latest");
  const serviceRegion = $("#service-runs");
  const modelRegion = $("#model-runs");
  const staleSelect = $("#stale-after");

  const counts = withLoading(countsRegion, loadCounts(countsRegion)).catch((error) => {
    replace(countsRegion, errorBox(error));
    return null;
  });
  withLoading(serviceRegion, counts).then((result) => {
    if (result) renderServiceRuns(serviceRegion, result.serviceRuns);
    else replace(serviceRegion, el("p", { class: "muted", text: "Not available." }));
  });
  withLoading(modelRegion, counts).then((result) => {
    if (result) renderModelRuns(modelRegion, result.runs);
    else replace(modelRegion, el("p", { class: "muted", text: "Not available." }));
  });

  try {
    const [readings, measures] = await withLoading(
      latestRegion,
      Promise.all([post("/sensor/latest-readings", {}), listMeasures()]),
    );
    const datatypes = new Map(measures.map((m) => [measureKey(m.name, m.units), m.datatype]));
    const render = () => renderLatest(latestRegion, readings, datatypes, Number(staleSelect.value));
    render();
    staleSelect.addEventListener("change", render);
    $("#stale-form").addEventListener("submit", (event) => event.preventDefault());
  } catch (error) {
    replace(latestRegion, errorBox(error));
  }
}

main();
