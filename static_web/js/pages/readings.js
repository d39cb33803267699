// Readings: a paged table of typed values for chosen sensors and measures, and a CSV download.

import { post, postForBlob } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, withLoading, errorBox, bindForm, queryParams, setQueryParams, downloadBlob } from "../dom.js";
import { formatValue, formatTime, timeZoneName, fileStamp } from "../format.js";
import { measureLabel } from "../catalog.js";
import { sensorPicker, initRange, readRange } from "../pickers.js";

const PAGE_SIZES = [25, 50, 100, 500];
const state = { rows: [], page: 0, pageSize: 50, summary: "" };

async function fetchReadings(sensors, measures, from, to) {
  const pairs = sensors.flatMap((sensor) => measures.map((measure) => ({ sensor, measure })));
  const replies = await Promise.all(
    pairs.map(({ sensor, measure }) =>
      post("/sensor/sensor-readings", {
        unique_identifier: sensor.unique_identifier,
        measure_name: measure.name,
        dt_from: from.toISOString(),
        dt_to: to.toISOString(),
      }),
    ),
  );
  const rows = pairs.flatMap(({ sensor, measure }, i) =>
    replies[i].map((reading) => ({
      timestamp: reading.timestamp,
      time: new Date(reading.timestamp).getTime(),
      sensor: sensor.unique_identifier,
      measure,
      value: reading.value,
    })),
  );
  rows.sort((a, b) => a.time - b.time || a.sensor.localeCompare(b.sensor) || a.measure.name.localeCompare(b.measure.name));
  return rows;
}

function renderPage() {
  const region = $("#results");
  const total = state.rows.length;
  const pages = Math.max(1, Math.ceil(total / state.pageSize));
  state.page = Math.min(state.page, pages - 1);
  const start = state.page * state.pageSize;
  const slice = state.rows.slice(start, start + state.pageSize);

  const body = el(
    "tbody",
    {},
    slice.map((row) =>
      el(
        "tr",
        {},
        el("td", {}, el("time", { datetime: row.timestamp, text: formatTime(row.timestamp) })),
        el("td", { text: row.sensor }),
        el("td", { text: measureLabel(row.measure) }),
        el("td", {
          class: `num value-${row.measure.datatype}`,
          dataset: { datatype: row.measure.datatype },
          text: formatValue(row.value, row.measure.datatype),
        }),
        el("td", { class: "muted", text: row.measure.datatype }),
      ),
    ),
  );
  if (!slice.length) body.append(el("tr", { class: "empty" }, el("td", { colspan: 5, text: "No readings in this range." })));
  const caption = `${total} reading${total === 1 ? "" : "s"}${state.summary} (times in ${timeZoneName()})`;
  const tableNode = el(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Readings" },
    el(
      "table",
      { class: "data", id: "readings-table" },
      el("caption", { text: caption }),
      el(
        "thead",
        {},
        el("tr", {}, ["Timestamp", "Sensor", "Measure", "Value", "Type"].map((h, i) => el("th", { scope: "col", class: i === 3 ? "num" : "", text: h }))),
      ),
      body,
    ),
  );

  const sizeSelect = el(
    "select",
    { id: "page-size", name: "page_size" },
    PAGE_SIZES.map((n) => el("option", { value: n, text: String(n), selected: n === state.pageSize })),
  );
  sizeSelect.addEventListener("change", () => {
    state.pageSize = Number(sizeSelect.value);
    state.page = 0;
    renderPage();
    $("#page-size").focus();
  });
  const prev = el("button", { type: "button", class: "secondary small", id: "prev-page", text: "Previous page", disabled: state.page === 0 });
  const next = el("button", { type: "button", class: "secondary small", id: "next-page", text: "Next page", disabled: state.page >= pages - 1 });
  prev.addEventListener("click", () => {
    state.page -= 1;
    renderPage();
    $("#prev-page").focus();
  });
  next.addEventListener("click", () => {
    state.page += 1;
    renderPage();
    $("#next-page").focus();
  });
  const pager = el(
    "div",
    { class: "pager" },
    prev,
    el("span", { id: "page-info", role: "status", text: `Page ${state.page + 1} of ${pages}` }),
    next,
    el("div", { class: "field" }, el("label", { for: "page-size", text: "Rows per page" }), sizeSelect),
  );
  replace(region, pager, tableNode);
}

/**
 * Say when the range starts before the instant from which the type keeps raw readings
 * (its retention); the readings route itself just answers what is left.
 */
async function showRetention(type, sensors, from) {
  const notice = $("#retention-notice");
  notice.hidden = true;
  if (!type.retention_days || !sensors.length) return;
  let retainedFrom;
  try {
    // Every sensor of a type keeps the same span: one sensor answers for all.
    ({ retained_from: retainedFrom } = await post("/sensor/readings-retained-from", { unique_identifier: sensors[0].unique_identifier }));
  } catch {
    return; // the readings are shown anyway; the notice is an aside
  }
  if (!retainedFrom || from.getTime() >= new Date(retainedFrom).getTime()) return;
  const days = type.retention_days;
  notice.textContent =
    `Raw readings before ${formatTime(retainedFrom)} have been removed (retention ${days} day${days === 1 ? "" : "s"}); ` +
    "the plots' hourly and coarser aggregates still cover that range.";
  notice.hidden = false;
}

async function main() {
  await startPage("readings");
  const params = queryParams();
  initRange($("#r-from"), $("#r-to"), { from: params.get("from"), to: params.get("to"), days: 1 });
  const form = $("#readings-form");
  let picker;
  try {
    picker = await withLoading(
      form,
      sensorPicker({
        typeSelect: $("#r-type"),
        sensorsBox: $("#r-sensors"),
        measuresBox: $("#r-measures"),
        initial: { type: params.get("type"), sensors: params.getAll("sensor"), measures: params.getAll("measure") },
      }),
    );
  } catch (error) {
    form.prepend(errorBox(error));
    return;
  }

  const chosen = () => {
    const { type, sensors, measures } = picker.selection();
    if (!type) throw new Error("Choose a sensor type.");
    if (!sensors.length) throw new Error("Choose at least one sensor.");
    if (!measures.length) throw new Error("Choose at least one measure.");
    return { type, sensors, measures, ...readRange($("#r-from"), $("#r-to")) };
  };

  const status = bindForm(
    form,
    async () => {
      const { type, sensors, measures, from, to } = chosen();
      setQueryParams({
        type: type.name,
        sensor: sensors.map((s) => s.unique_identifier),
        measure: measures.map((m) => m.name),
        from: from.toISOString(),
        to: to.toISOString(),
      });
      const region = $("#results");
      const [rows] = await Promise.all([
        withLoading(region, fetchReadings(sensors, measures, from, to), "Loading readings…"),
        showRetention(type, sensors, from),
      ]);
      state.rows = rows;
      state.page = 0;
      state.summary = ` from ${sensors.length} sensor${sensors.length === 1 ? "" : "s"}`;
      renderPage();
      return `${state.rows.length} readings loaded.`;
    },
    { busyText: "Loading…" },
  );

  const downloadButton = $("#download-csv");
  downloadButton.addEventListener("click", async () => {
    status.className = "form-status";
    status.textContent = "";
    let body;
    try {
      const { sensors, measures, from, to } = chosen();
      body = {
        unique_identifier: sensors.map((s) => s.unique_identifier),
        measure_name: measures.map((m) => m.name),
        dt_from: from.toISOString(),
        dt_to: to.toISOString(),
      };
      downloadButton.disabled = true;
      downloadButton.textContent = "Preparing CSV…";
      const blob = await postForBlob("/sensor/export-readings", body);
      downloadBlob(blob, `readings-${fileStamp()}.csv`);
      status.className = "form-status success";
      status.textContent = "CSV downloaded.";
    } catch (error) {
      status.className = "form-status error";
      status.setAttribute("role", "alert");
      status.textContent = error.detail || error.message;
    } finally {
      downloadButton.disabled = false;
      downloadButton.textContent = "Download CSV";
    }
  });

  // From a sensor's "Readings" link (or a shared URL): its readings at once. Without a
  // range, the day up to its newest reading, which may be older than the last day.
  if (params.get("sensor")) {
    if (!params.get("from")) await rangeToNewest(params.get("type"), params.getAll("sensor"));
    form.requestSubmit();
  }
}

/** Move the range to end at the chosen sensors' newest reading when that is before it. */
async function rangeToNewest(typeName, sensorIds) {
  let latest;
  try {
    latest = await post("/sensor/latest-readings", typeName ? { type_name: typeName } : {});
  } catch {
    return; // keep the default range; the form reports the API's state when it submits
  }
  const newest = Math.max(...latest.filter((r) => sensorIds.includes(r.unique_identifier)).map((r) => new Date(r.timestamp).getTime()));
  if (!Number.isFinite(newest) || newest >= readRange($("#r-from"), $("#r-to")).from.getTime()) return;
  initRange($("#r-from"), $("#r-to"), { to: new Date(newest + 60e3).toISOString(), days: 1 });
}

main();
