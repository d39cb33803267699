// Import: pick a CSV file, preview its first rows (read from its first few KB only), map
// its columns, run a dry run, then import. The file goes up in parts of at most 8 MB cut
// at line ends (a request may not carry a large file whole), and is imported from there.

import { ApiError, post, postCsv } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, $$, replace, table, bindForm, fillSelect, errorBox } from "../dom.js";
import { listSensorsWithTypes, listSensorTypes, measureLabel } from "../catalog.js";

const PREVIEW_BYTES = 64 * 1024;
const PREVIEW_ROWS = 10;
// Bytes per part: never more characters than the API's 8 MB (8 * 2**20 characters).
const PART_BYTES = 8 * 1024 * 1024;
const NEWLINE = 10;

const state = { types: [], sensors: [], header: [], upload: null };

/** Rows of delimited text with quoted fields; a last line cut short is left out. */
function parseRows(text, delimiter, complete) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (complete && (cell || row.length)) rows.push([...row, cell]);
  return rows.filter((r) => r.length > 1 || r[0] !== "");
}

async function preview() {
  const file = $("#i-file").files[0];
  state.upload = null;
  if (!file) return;
  const text = await file.slice(0, PREVIEW_BYTES).text();
  const rows = parseRows(text, $("#i-delimiter").value, file.size <= PREVIEW_BYTES);
  state.header = (rows[0] || []).map((name) => name.trim());
  const body = rows.slice(1, PREVIEW_ROWS + 1);
  replace(
    $("#i-preview"),
    el("p", { class: "muted", text: `${file.name}: ${(file.size / 1e6).toFixed(1)} MB. The first rows:` }),
    table(
      `The first ${body.length} rows of ${file.name}`,
      state.header.map((name, i) => ({ label: name, render: (r) => r[i] ?? "" })),
      body,
      { empty: "No rows after the header." },
    ),
  );
  const guess = state.header.find((name) => /time|date/i.test(name)) || state.header[0];
  fillSelect($("#i-ts-column"), state.header);
  $("#i-ts-column").value = guess || "";
  fillSelect($("#i-sensor-column"), state.header);
  const sensorGuess = state.header.find((name) => /sensor|identifier|device/i.test(name));
  if (sensorGuess) $("#i-sensor-column").value = sensorGuess;
  renderMeasures();
}

function sensorMode() {
  return $("input[name=sensor_mode]:checked").value;
}

/** The measures a column may map to: those of the chosen sensor's type, or all. */
function candidateMeasures() {
  if (sensorMode() === "fixed") {
    const sensor = state.sensors.find((s) => s.unique_identifier === $("#i-sensor").value);
    const type = sensor && state.types.find((t) => t.name === sensor.type_name);
    return type ? type.measures : [];
  }
  const byName = new Map();
  for (const type of state.types) for (const m of type.measures) if (!byName.has(m.name)) byName.set(m.name, m);
  return [...byName.values()];
}

function renderMeasures() {
  const fixed = sensorMode() === "fixed";
  $("#i-sensor-field").hidden = !fixed;
  $("#i-sensor-column-field").hidden = fixed;
  const skip = new Set([$("#i-ts-column").value, fixed ? null : $("#i-sensor-column").value]);
  const measures = candidateMeasures();
  const columns = state.header.filter((name) => !skip.has(name));
  replace(
    $("#i-measures"),
    el(
      "fieldset",
      { class: "field" },
      el("legend", { text: "Measure of each column" }),
      columns.length ? null : el("p", { class: "muted", text: "Pick a file first." }),
      el(
        "div",
        { class: "grid two" },
        columns.map((column, i) => {
          const id = `i-measure-${i}`;
          const choice = el(
            "select",
            { id, dataset: { column } },
            el("option", { value: "", text: "(not imported)" }),
            measures.map((m) => el("option", { value: m.name, text: measureLabel(m) })),
          );
          if (measures.some((m) => m.name === column)) choice.value = column;
          return el("div", { class: "field" }, el("label", { for: id, text: column }), choice);
        }),
      ),
    ),
  );
}

function readMapping() {
  const format = $("#i-ts-format").value === "custom" ? $("#i-ts-custom").value.trim() : $("#i-ts-format").value;
  const columns = {};
  for (const choice of $$("#i-measures select")) if (choice.value) columns[choice.dataset.column] = choice.value;
  if (!Object.keys(columns).length) throw new Error("Choose a measure for at least one column.");
  const mapping = {
    timestamp_column: $("#i-ts-column").value,
    timestamp_format: format || "iso",
    timezone: $("#i-timezone").value.trim() || "UTC",
    delimiter: $("#i-delimiter").value,
    columns,
  };
  if (sensorMode() === "fixed") mapping.unique_identifier = $("#i-sensor").value;
  else mapping.sensor_column = $("#i-sensor-column").value;
  return mapping;
}

/** Where the parts of `file` begin and end: at most PART_BYTES each, cut after a newline. */
async function partRanges(file) {
  const ranges = [];
  let start = 0;
  while (start < file.size) {
    let end = Math.min(start + PART_BYTES, file.size);
    if (end < file.size) {
      const bytes = new Uint8Array(await file.slice(start, end).arrayBuffer());
      const last = bytes.lastIndexOf(NEWLINE);
      if (last < 0) throw new Error(`A line longer than 8 MB starts at byte ${start}.`);
      end = start + last + 1;
    }
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

/** Upload the file in parts once (a dry run and the import share them); its upload id. */
async function ensureUploaded(file) {
  if (state.upload && state.upload.file === file) return state.upload;
  const progress = $("#i-progress");
  const ranges = await partRanges(file);
  const upload = { file, id: crypto.randomUUID(), parts: ranges.length };
  for (const [i, [start, end]] of ranges.entries()) {
    progress.textContent = `Uploading part ${i + 1} of ${ranges.length}…`;
    const text = await file.slice(start, end).text();
    await postCsv("/sensor/upload-csv-part", text, { upload_id: upload.id, part_number: i + 1 });
  }
  progress.textContent = `Uploaded ${ranges.length} of ${ranges.length} parts.`;
  state.upload = upload;
  return upload;
}

function renderReport(report) {
  const summary = `${report.rows.toLocaleString()} rows read, ${report.rows_accepted.toLocaleString()} good, ${report.readings.toLocaleString()} readings, ${report.error_count.toLocaleString()} errors.`;
  const shown = report.errors.length < report.error_count ? ` The first ${report.errors.length} are listed.` : "";
  replace(
    $("#i-report"),
    el("p", { class: "report-summary", text: summary + shown }),
    report.errors.length
      ? table(
          "Errors by line (the header is line 1)",
          [
            { label: "Line", render: (e) => String(e.line) },
            { label: "Column", render: (e) => e.column ?? "(the row)" },
            { label: "Problem", render: (e) => e.message, wrap: true },
          ],
          report.errors,
        )
      : null,
  );
}

function plotLink(mapping, report) {
  const params = new URLSearchParams();
  if (mapping.unique_identifier) {
    const sensor = state.sensors.find((s) => s.unique_identifier === mapping.unique_identifier);
    params.set("type", sensor.type_name);
    params.set("sensor", mapping.unique_identifier);
  }
  for (const measure of new Set(Object.values(mapping.columns))) params.append("measure", measure);
  if (report.first_timestamp) {
    params.set("from", report.first_timestamp);
    params.set("to", new Date(new Date(report.last_timestamp).getTime() + 60e3).toISOString());
  }
  return el("p", {}, el("a", { href: `/plots.html?${params}`, text: "Plot the imported readings" }));
}

async function submit(form, submitter) {
  const file = $("#i-file").files[0];
  const dryRun = submitter && submitter.value === "dry-run";
  const mapping = readMapping();
  replace($("#i-report"));
  const upload = await ensureUploaded(file);
  $("#i-progress").textContent = dryRun ? "Checking every row…" : "Importing…";
  let report;
  try {
    report = await post("/sensor/import-readings-csv", { upload_id: upload.id, parts: upload.parts, mapping, dry_run: dryRun });
  } catch (error) {
    $("#i-progress").textContent = "";
    if (error instanceof ApiError && error.status === 400 && /has no parts/.test(error.detail)) state.upload = null;
    if (error instanceof ApiError && error.fieldErrors.length > 1) {
      replace($("#i-report"), el("ul", { class: "error" }, error.fieldErrors.map((e) => el("li", { text: e.message }))));
      throw new Error(`Nothing imported: ${error.fieldErrors.length} problems, listed below. Run a dry run to see them all.`);
    }
    throw error;
  }
  $("#i-progress").textContent = "";
  renderReport(report);
  if (dryRun) {
    return report.error_count
      ? `Dry run: ${report.error_count} errors; fix them before importing. Nothing was written.`
      : `Dry run: all ${report.rows.toLocaleString()} rows are good. Nothing was written yet.`;
  }
  state.upload = null; // the imported parts are deleted
  $("#i-report").append(plotLink(mapping, report));
  return `Imported ${report.inserted.toLocaleString()} readings (${report.duplicates.toLocaleString()} stored already).`;
}

async function main() {
  await startPage("import");
  const form = $("#import-form");
  try {
    [state.types, state.sensors] = await Promise.all([listSensorTypes(), listSensorsWithTypes()]);
  } catch (error) {
    form.prepend(errorBox(error));
    return;
  }
  fillSelect(
    $("#i-sensor"),
    state.sensors.map((s) => ({ value: s.unique_identifier, label: `${s.unique_identifier} (${s.type_name})` })),
    { placeholder: state.sensors.length ? "" : "Add a sensor first" },
  );
  $("#i-file").addEventListener("change", preview);
  $("#i-delimiter").addEventListener("change", preview);
  for (const node of [$("#i-ts-column"), $("#i-sensor"), $("#i-sensor-column"), ...$$("input[name=sensor_mode]")]) {
    node.addEventListener("change", renderMeasures);
  }
  $("#i-ts-format").addEventListener("change", () => {
    $("#i-custom-field").hidden = $("#i-ts-format").value !== "custom";
  });
  if ($("#i-file").files.length) await preview(); // chosen before the page was ready
  else renderMeasures();
  bindForm(form, submit, { busyText: "Working…" });
}

main();
