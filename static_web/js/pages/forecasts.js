// Forecasts: start an ARIMA orchestration and follow its Durable Functions status until it
// ends, showing each series' outcome (its run, the fallback fit used, or why it failed),
// then link to its runs. When the API has no ARIMA starter, say so.

import { request, getStatusUrl, openApi, ApiError } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, withLoading, errorBox, bindForm, fillSelect, table } from "../dom.js";
import { toLocalInput, localInputToIso, formatJson, formatTime } from "../format.js";
import { listSensorsWithTypes, listSensorTypes, measureLabel } from "../catalog.js";

const STARTER = "/forecast/arima";
const FINAL = new Set(["Completed", "Failed", "Terminated", "Canceled"]);
const state = { sensors: [], types: [], available: null };

/** Whether the API offers the ARIMA starter: true, false, or null when unknown. */
async function starterAvailable() {
  const doc = await openApi();
  if (!doc || !doc.paths) return null;
  return Object.keys(doc.paths).some((path) => path.replace(/\/$/, "").endsWith(STARTER));
}

function setServiceState(available) {
  state.available = available;
  const notice = $("#service-state");
  const button = $("#start-forecast");
  if (available === false) {
    notice.className = "notice warning";
    notice.textContent = "The forecasting service is unavailable: this API has no ARIMA starter yet. You can still look at earlier runs on the Models page.";
    button.disabled = true;
    button.setAttribute("data-locked", "");
  } else if (available === true) {
    notice.className = "notice";
    notice.textContent = "The forecasting service is available.";
    button.disabled = false;
    button.removeAttribute("data-locked");
  } else {
    notice.className = "notice";
    notice.textContent = "Could not tell whether the forecasting service is available; starting a forecast will find out.";
    button.disabled = false;
    button.removeAttribute("data-locked");
  }
}

function fillMeasures() {
  const sensor = state.sensors.find((s) => s.unique_identifier === $("#f-sensor").value);
  const type = sensor ? state.types.find((t) => t.name === sensor.type_name) : null;
  const measures = type ? type.measures.filter((m) => m.datatype === "float" || m.datatype === "integer") : [];
  fillSelect(
    $("#f-measure"),
    measures.map((m, i) => ({ value: String(i), label: measureLabel(m) })),
    { placeholder: measures.length ? "" : "No numeric measure" },
  );
  $("#f-measure").measures = measures;
}

/** Describe a Durable `customStatus`: a number is a percentage, a string a message. */
export function describeProgress(customStatus) {
  if (customStatus === null || customStatus === undefined || customStatus === "") return { text: "", percent: null };
  if (typeof customStatus === "number") return { text: `${Math.round(customStatus)} %`, percent: customStatus };
  if (typeof customStatus === "string") return { text: customStatus, percent: null };
  const percent = customStatus.percent ?? customStatus.progress ?? customStatus.percentage ?? null;
  const parts = [customStatus.stage, customStatus.step, customStatus.message, customStatus.status].filter((p) => typeof p === "string" && p);
  if (typeof customStatus.done === "number" && typeof customStatus.total === "number" && customStatus.total > 0) {
    parts.push(`${customStatus.done} of ${customStatus.total}`);
    return { text: parts.join(" · "), percent: percent ?? (100 * customStatus.done) / customStatus.total };
  }
  return { text: parts.join(" · ") || formatJson(customStatus), percent: typeof percent === "number" ? percent : null };
}

/**
 * The outcome of each series so far: from the custom status (`series`, as they finish; a
 * failed instance's output is only its message), else from a completed output's `series`.
 * Each is `{sensor, measure, units, run_id?, fallback?, error?}`; `omitted` counts those
 * the status left out.
 */
export function seriesOutcomes(customStatus, output) {
  if (customStatus && Array.isArray(customStatus.series)) {
    return { series: customStatus.series, omitted: customStatus.omitted || 0 };
  }
  if (output && Array.isArray(output.series)) {
    const series = output.series.map((r) => ({ ...r, fallback: r.metrics ? r.metrics.fallback ?? null : null }));
    return { series, omitted: 0 };
  }
  return { series: [], omitted: 0 };
}

function outcomeCell(entry) {
  if (entry.error) return el("span", { class: "error", text: `Failed: ${entry.error}` });
  const fit = entry.fallback ? `Forecast with a fallback fit (${entry.fallback})` : "Forecast";
  if (!Number.isInteger(entry.run_id)) return fit;
  return [`${fit}: `, el("a", { href: `/models.html?model=Arima&run=${entry.run_id}`, text: `Run #${entry.run_id}` })];
}

function renderOutcomes(customStatus, output) {
  const { series, omitted } = seriesOutcomes(customStatus, output);
  const holder = $("#run-series");
  holder.hidden = series.length === 0;
  const columns = [
    { label: "Sensor", render: (r) => r.sensor ?? "" },
    { label: "Measure", render: (r) => (r.measure ? `${r.measure}${r.units ? ` (${r.units})` : ""}` : "") },
    { label: "Outcome", render: outcomeCell },
  ];
  replace(
    holder,
    table("Series", columns, series),
    omitted ? el("p", { text: `${omitted} more series forecast without trouble are not listed.` }) : null,
  );
}

function runLinks(startedAt, output) {
  const from = new Date(startedAt.getTime() - 60e3).toISOString();
  const to = new Date(Date.now() + 60e3).toISOString();
  const links = [el("a", { href: `/models.html?model=Arima&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, text: "See the runs of this forecast on the Models page" })];
  const ids = Array.isArray(output?.run_ids) ? output.run_ids : Array.isArray(output) && output.every(Number.isInteger) ? output : [];
  for (const id of ids) links.push(" · ", el("a", { href: `/models.html?model=Arima&run=${id}`, text: `Run #${id}` }));
  return links;
}

async function follow(statusUrl, startedAt) {
  const statusLine = $("#run-status");
  const bar = $("#run-progress");
  const output = $("#run-output");
  let delay = 1000;
  for (;;) {
    const { status, body } = await getStatusUrl(statusUrl);
    if (!body || typeof body !== "object" || !body.runtimeStatus) {
      if (status >= 400) throw new ApiError(status, (body && body.detail) || `The status URL answered ${status}.`);
    } else {
      const progress = describeProgress(body.customStatus);
      statusLine.textContent = `${body.runtimeStatus}${progress.text ? `: ${progress.text}` : ""} (updated ${formatTime(body.lastUpdatedTime || new Date())})`;
      statusLine.dataset.runtimeStatus = body.runtimeStatus;
      const failed = FINAL.has(body.runtimeStatus) && body.runtimeStatus !== "Completed";
      statusLine.classList.toggle("error", failed);
      if (progress.percent !== null) bar.value = Math.max(0, Math.min(100, progress.percent));
      else bar.removeAttribute("value");
      renderOutcomes(body.customStatus, body.output);
      if (FINAL.has(body.runtimeStatus)) {
        if (body.runtimeStatus === "Completed") bar.value = 100;
        output.hidden = body.output === undefined || body.output === null;
        output.textContent = formatJson(body.output);
        const links = $("#run-links");
        links.hidden = false;
        links.classList.toggle("error", failed);
        replace(links, failed ? `The forecast ended as ${body.runtimeStatus}.` : runLinks(startedAt, body.output));
        return body;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 1.5, 5000);
  }
}

async function main() {
  await startPage("forecasts");
  $("#f-predict-from").value = toLocalInput(new Date());
  const form = $("#arima-form");
  try {
    const [available, types] = await withLoading(form, Promise.all([starterAvailable(), listSensorTypes()]));
    state.types = types;
    state.sensors = await listSensorsWithTypes(types);
    fillSelect(
      $("#f-sensor"),
      state.sensors.map((s) => ({ value: s.unique_identifier, label: `${s.unique_identifier} (${s.type_name})` })),
      { placeholder: state.sensors.length ? "" : "No sensors yet" },
    );
    fillMeasures();
    setServiceState(available);
  } catch (error) {
    form.prepend(errorBox(error));
    setServiceState(null);
  }
  $("#f-sensor").addEventListener("change", fillMeasures);

  bindForm(
    form,
    async () => {
      const sensor = $("#f-sensor").value;
      const measure = ($("#f-measure").measures || [])[Number($("#f-measure").value)];
      if (!sensor || !measure) throw new Error("Choose a sensor and one of its numeric measures.");
      const body = {
        sensors: { include_sensors: [sensor], include_measures: [[measure.name, measure.units]] },
        data: {
          num_days_training: Number($("#f-training-days").value),
          predict_from_datetime: localInputToIso($("#f-predict-from").value),
        },
        arima: { hours_forecast: Number($("#f-hours").value) },
      };
      let reply;
      try {
        reply = await request(STARTER, { method: "POST", body });
      } catch (error) {
        if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
          setServiceState(false);
          throw new ApiError(error.status, "The forecasting service is unavailable on this API.");
        }
        throw error;
      }
      const started = await reply.json();
      // The /api status route works behind a Static Web App; Durable's own URL locally.
      const statusUrl = started.statusApiUri || started.statusQueryGetUri;
      if (!statusUrl) throw new Error("The API started the forecast but gave no status URL.");
      const section = $("#progress-section");
      section.hidden = false;
      $("#run-links").hidden = true;
      $("#run-output").hidden = true;
      $("#run-series").hidden = true;
      $("#run-status").classList.remove("error");
      $("#run-status").textContent = `Started (instance ${started.id || ""}).`;
      const result = await follow(statusUrl, new Date(Date.now() - 5000));
      // A forecast that did not complete is a failure of the form, shown as one (in red).
      if (result.runtimeStatus !== "Completed") throw new Error(`The forecast ended as ${result.runtimeStatus}.`);
      return "The forecast has finished.";
    },
    { busyText: "Forecasting…" },
  );
}

main();
