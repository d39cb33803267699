// Sensors: list by type, add types and sensors, edit and delete sensors, location history.

import { post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, fillSelect, confirmDialog, queryParams, setQueryParams } from "../dom.js";
import { formatTime, timeZoneName, toLocalInput, localInputToIso, formatValue } from "../format.js";
import { listSensorTypes, listMeasures, listSensorsWithTypes, listLocationSchemas, listDerivedMeasures, measureLabel } from "../catalog.js";
import { definitionList, coordinateInputs } from "../editors.js";

const state = { types: [], sensors: [], derived: [], schemas: [], historyFor: null, coordinates: null };

function renderTypes() {
  replace(
    $("#type-list"),
    table(
      "Sensor types and their measures",
      [
        { label: "Type", render: (t) => t.name },
        { label: "Description", render: (t) => t.description ?? "", wrap: true },
        { label: "Measures", render: (t) => t.measures.map((m) => `${measureLabel(m)}: ${m.datatype}`).join(", "), wrap: true },
        { label: "Raw readings kept", render: (t) => (t.retention_days ? `${t.retention_days} day${t.retention_days === 1 ? "" : "s"}` : "forever") },
        {
          label: "Actions",
          render: (t) =>
            el("button", {
              type: "button",
              class: "secondary small",
              text: "Delete",
              "data-editor-only": "",
              "aria-label": `Delete sensor type ${t.name}`,
              onclick: () => deleteType(t.name),
            }),
        },
      ],
      state.types,
      { empty: "No sensor types yet. Add one below." },
    ),
  );
  const typeNames = state.types.map((t) => t.name);
  fillSelect($("#type-filter"), typeNames, { placeholder: "All types" });
  fillSelect($("#new-sensor-type"), typeNames, { placeholder: typeNames.length ? "" : "Add a sensor type first" });
  fillSelect($("#retention-type"), typeNames, { placeholder: typeNames.length ? "" : "Add a sensor type first" });
}

function renderDerived() {
  replace(
    $("#derived-list"),
    table(
      "Derived measures",
      [
        { label: "Type", render: (d) => d.type_name },
        { label: "Measure", render: (d) => measureLabel(d) },
        { label: "Expression", render: (d) => el("code", { text: d.expression }), wrap: true },
        { label: "Inputs", render: (d) => Object.entries(d.inputs).map(([v, m]) => `${v} = ${m}`).join(", "), wrap: true },
        {
          label: "Actions",
          render: (d) =>
            el("button", {
              type: "button",
              class: "secondary small",
              text: "Delete",
              "data-editor-only": "",
              "aria-label": `Delete derived measure ${d.name} of ${d.type_name}`,
              onclick: () => deleteDerived(d),
            }),
        },
      ],
      state.derived,
      { empty: "No derived measures yet." },
    ),
  );
  fillSelect($("#derived-type"), state.types.map((t) => t.name), { placeholder: state.types.length ? "" : "Add a sensor type first" });
}

async function deleteDerived(d) {
  if (!(await confirmDialog(`Delete derived measure “${d.name}” of ${d.type_name}? No readings are stored for it.`))) return;
  const region = $("#derived-list");
  try {
    await post("/sensor/delete-derived-measure", { type_name: d.type_name, name: d.name });
  } catch (error) {
    region.prepend(errorBox(error));
    return;
  }
  await reload();
}

/** "T = temperature, RH = humidity" as {T: "temperature", RH: "humidity"}. */
function parseInputs(text) {
  const inputs = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [variable, measure, ...rest] = part.split("=").map((p) => p.trim());
    if (!variable || !measure || rest.length) throw new Error(`Write each input as “variable = measure”, not “${part}”.`);
    inputs[variable] = measure;
  }
  return inputs;
}

function renderSensors() {
  const filter = $("#type-filter").value;
  const rows = state.sensors.filter((s) => !filter || s.type_name === filter);
  replace(
    $("#sensor-list"),
    table(
      filter ? `Sensors of type ${filter}` : "All sensors",
      [
        { label: "Unique identifier", render: (s) => s.unique_identifier },
        { label: "Type", render: (s) => s.type_name },
        { label: "Name", render: (s) => s.name ?? "" },
        { label: "Notes", render: (s) => s.notes ?? "", wrap: true },
        {
          label: "Actions",
          render: (s) =>
            el(
              "div",
              { class: "actions" },
              el("button", { type: "button", class: "secondary small", text: "Edit", "data-editor-only": "", "aria-label": `Edit sensor ${s.unique_identifier}`, onclick: () => openEdit(s) }),
              el("button", { type: "button", class: "secondary small", text: "Locations", "aria-label": `Location history of ${s.unique_identifier}`, onclick: () => showHistory(s.unique_identifier) }),
              el("a", { class: "button secondary small", href: `/readings.html?type=${encodeURIComponent(s.type_name)}&sensor=${encodeURIComponent(s.unique_identifier)}`, text: "Readings", "aria-label": `Readings of ${s.unique_identifier}` }),
              el("button", { type: "button", class: "danger small", text: "Delete", "data-editor-only": "", "aria-label": `Delete sensor ${s.unique_identifier}`, onclick: () => deleteSensor(s.unique_identifier) }),
            ),
        },
      ],
      rows,
      { empty: state.types.length ? "No sensors yet. Add one below." : "Add a sensor type, then a sensor." },
    ),
  );
}

async function reload() {
  const region = $("#sensor-list");
  try {
    const [types, measures, derived] = await withLoading(region, Promise.all([listSensorTypes(), listMeasures(), listDerivedMeasures()]));
    state.types = types;
    state.derived = derived;
    measureEditor.setExisting(measures);
    state.sensors = await withLoading(region, listSensorsWithTypes(types));
    renderTypes();
    renderDerived();
    renderSensors();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteType(name) {
  if (!(await confirmDialog(`Delete sensor type “${name}”? Its measures stay.`))) return;
  const region = $("#type-list");
  region.querySelectorAll(":scope > p.error").forEach((box) => box.remove());
  try {
    await post("/sensor/delete-sensor-type", { type_name: name });
  } catch (error) {
    // A refused delete (sensors of the type still exist) keeps the table, with the reason above it.
    region.prepend(errorBox(error));
    return;
  }
  await reload();
}

async function deleteSensor(uniqueIdentifier) {
  if (!(await confirmDialog(`Delete sensor “${uniqueIdentifier}” with all its readings and location history?`))) return;
  const region = $("#sensor-list");
  try {
    await withLoading(region, post("/sensor/delete-sensor", { unique_identifier: uniqueIdentifier }));
  } catch (error) {
    region.prepend(errorBox(error));
    return;
  }
  if (state.historyFor === uniqueIdentifier) $("#history-section").hidden = true;
  await reload();
}

// ------------------------------------------------------------------ edit dialog

function openEdit(sensor) {
  const dialog = $("#edit-dialog");
  $("#edit-id").textContent = sensor.unique_identifier;
  $("#edit-name").value = sensor.name ?? "";
  $("#edit-notes").value = sensor.notes ?? "";
  dialog.dataset.sensor = sensor.unique_identifier;
  const status = $("#edit-form .form-status");
  if (status) status.textContent = "";
  dialog.showModal();
  $("#edit-name").focus();
}

// ------------------------------------------------------------------ location history

async function showHistory(uniqueIdentifier) {
  state.historyFor = uniqueIdentifier;
  setQueryParams({ sensor: uniqueIdentifier });
  const section = $("#history-section");
  section.hidden = false;
  $("#history-heading").textContent = `Location history of ${uniqueIdentifier}`;
  $("#history-heading").focus();
  showAssetAndAnnotations(uniqueIdentifier);
  const region = $("#history");
  try {
    const [history, schemas] = await withLoading(
      region,
      Promise.all([post("/sensor/list-sensor-locations", { unique_identifier: uniqueIdentifier }), listLocationSchemas()]),
    );
    state.schemas = schemas;
    const identifierNames = [...new Set(history.flatMap((h) => Object.keys(h).filter((k) => k !== "id" && k !== "installation_datetime")))];
    replace(
      region,
      table(
        `Newest installation first (times in ${timeZoneName()})`,
        [
          { label: "Installed", render: (h) => el("time", { datetime: h.installation_datetime, text: formatTime(h.installation_datetime) }) },
          { label: "Location id", render: (h) => String(h.id) },
          ...identifierNames.map((name) => ({ label: name, render: (h) => (name in h ? formatValue(h[name]) : "") })),
        ],
        history,
        { empty: "This sensor has no recorded location." },
      ),
    );
    const schemaSelect = $("#sl-schema");
    fillSelect(schemaSelect, schemas.map((s) => s.name), { placeholder: schemas.length ? "" : "Create a location schema first" });
    renderCoordinateInputs();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

// Every annotation of the sensor (and of the asset it is attached to), whatever its time.
const ALL_TIME = { dt_from: "0001-01-01T00:00:00Z", dt_to: "9999-12-31T23:59:59Z" };

async function showAssetAndAnnotations(uniqueIdentifier) {
  const assetRegion = $("#sensor-asset");
  const region = $("#sensor-annotations");
  try {
    const [attachments, annotations] = await withLoading(
      region,
      Promise.all([
        post("/asset/list-sensor-attachments", { unique_identifier: uniqueIdentifier }),
        post("/annotation/list-annotations", { unique_identifier: uniqueIdentifier, ...ALL_TIME }),
      ]),
    );
    const asset = attachments[0]?.asset;
    replace(
      assetRegion,
      asset
        ? el("p", {}, "Attached to ", el("a", { href: `/asset.html?name=${encodeURIComponent(asset)}`, text: asset }), ` since ${formatTime(attachments[0].installation_datetime)}.`)
        : el("p", { class: "muted", text: "Not attached to an asset." }),
    );
    replace(
      region,
      table(
        `Annotations (times in ${timeZoneName()})`,
        [
          { label: "From", render: (a) => formatTime(a.dt_from) },
          { label: "To", render: (a) => (a.dt_to ? formatTime(a.dt_to) : "") },
          { label: "On", render: (a) => a.asset ?? a.unique_identifier },
          { label: "Text", render: (a) => a.text, wrap: true },
          { label: "Tags", render: (a) => a.tags.join(", ") },
          { label: "By", render: (a) => a.author },
        ],
        annotations,
        { empty: "No annotations." },
      ),
    );
  } catch (error) {
    replace(region, errorBox(error));
  }
}

function renderCoordinateInputs() {
  const schema = state.schemas.find((s) => s.name === $("#sl-schema").value);
  state.coordinates = schema ? coordinateInputs(schema, "sl") : null;
  replace($("#sl-coordinates"), state.coordinates ? state.coordinates.node : el("p", { class: "muted", text: "Choose a schema." }));
}

// ------------------------------------------------------------------ start

const measureEditor = definitionList("measure");

async function main() {
  await startPage("sensors");
  $("#measure-editor").append(measureEditor.node);
  $("#type-filter").addEventListener("change", renderSensors);
  $("#filter-form").addEventListener("submit", (e) => e.preventDefault());
  $("#sl-schema").addEventListener("change", renderCoordinateInputs);
  $("#sl-installed").value = toLocalInput(new Date());

  bindForm($("#add-type-form"), async (form) => {
    const measures = measureEditor.read();
    const retention = form.elements.retention_days.value.trim();
    await post("/sensor/insert-sensor-type", {
      name: form.elements.name.value.trim(),
      description: form.elements.description.value.trim() || null,
      measures,
      // A number as typed: the API names a fraction or an out-of-range value.
      retention_days: retention ? Number(retention) : null,
    });
    const name = form.elements.name.value.trim();
    form.reset();
    measureEditor.reset();
    await reload();
    return `Sensor type “${name}” added.`;
  });

  bindForm($("#retention-form"), async (form) => {
    const typeName = form.elements.type_name.value;
    const days = form.elements.retention_days.value.trim();
    await post("/sensor/set-retention", { type_name: typeName, retention_days: days ? Number(days) : null });
    form.elements.retention_days.value = "";
    await reload();
    $("#retention-type").value = typeName;
    return days ? `Raw readings of “${typeName}” are kept for ${days} day${days === "1" ? "" : "s"}.` : `Raw readings of “${typeName}” are kept forever.`;
  });

  bindForm($("#add-sensor-form"), async (form) => {
    const body = {
      type_name: form.elements.type_name.value,
      unique_identifier: form.elements.unique_identifier.value.trim(),
    };
    if (form.elements.name.value.trim()) body.name = form.elements.name.value.trim();
    if (form.elements.notes.value.trim()) body.notes = form.elements.notes.value.trim();
    await post("/sensor/insert-sensor", body);
    const typeName = body.type_name;
    form.reset();
    form.elements.type_name.value = typeName;
    await reload();
    return `Sensor “${body.unique_identifier}” added.`;
  });

  bindForm($("#add-derived-form"), async (form) => {
    const body = {
      type_name: form.elements.type_name.value,
      name: form.elements.name.value.trim(),
      units: form.elements.units.value.trim() || null,
      expression: form.elements.expression.value.trim(),
      inputs: parseInputs(form.elements.inputs.value),
    };
    await post("/sensor/insert-derived-measure", body);
    form.reset();
    form.elements.type_name.value = body.type_name;
    await reload();
    return `Derived measure “${body.name}” added.`;
  });

  const dialog = $("#edit-dialog");
  $("#edit-cancel").addEventListener("click", () => dialog.close());
  bindForm($("#edit-form"), async (form) => {
    await post("/sensor/edit-sensor", {
      unique_identifier: dialog.dataset.sensor,
      name: form.elements.name.value,
      notes: form.elements.notes.value,
    });
    dialog.close();
    await reload();
    return "Saved.";
  });

  bindForm($("#sensor-location-form"), async (form) => {
    if (!state.coordinates) throw new Error("Choose a location schema.");
    await post("/sensor/insert-sensor-location", {
      unique_identifier: state.historyFor,
      schema_name: form.elements.schema_name.value,
      coordinates: state.coordinates.read(),
      installation_datetime: localInputToIso(form.elements.installation_datetime.value),
    });
    await showHistory(state.historyFor);
    return "Location recorded.";
  });

  await reload();
  const wanted = queryParams().get("sensor");
  if (wanted && state.sensors.some((s) => s.unique_identifier === wanted)) showHistory(wanted);
}

main();
