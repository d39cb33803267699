// One asset: where it sits in the tree, its sensors with their latest values, plots of
// their readings with the annotations drawn on them, the annotations (list and add) and
// the history of its parents. `asset.html?name=<asset>`.

import { post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, fillSelect, confirmDialog, queryParams } from "../dom.js";
import { formatTime, formatValue, timeZoneName, localInputToIso, toLocalInput } from "../format.js";
import { measureLabel, listSensorTypes } from "../catalog.js";
import { initRange, readRange } from "../pickers.js";
import { timeSeriesChart, ChartGroup } from "../charts.js";

const THIS_ASSET = "(this asset)";
const state = { name: null, sensors: [], types: [], range: null, group: null };

const assetLink = (name) => el("a", { href: `/asset.html?name=${encodeURIComponent(name)}`, text: name });
const toNumber = (value) => (typeof value === "boolean" ? (value ? 1 : 0) : typeof value === "number" ? value : null);
const seconds = (iso) => new Date(iso).getTime() / 1000;

/** The path from a root down to `name`, from the flat listing. */
function pathTo(name, byName) {
  const path = [];
  for (let at = byName.get(name); at; at = at.parent ? byName.get(at.parent) : null) path.unshift(at.name);
  return path;
}

async function renderSummary() {
  const all = await post("/asset/list-assets", {});
  const byName = new Map(all.map((a) => [a.name, a]));
  const asset = byName.get(state.name);
  if (!asset) throw new Error(`Asset “${state.name}” does not exist.`);
  const children = all.filter((a) => a.parent === state.name);
  const path = pathTo(state.name, byName);
  replace(
    $("#asset-summary"),
    el(
      "dl",
      { class: "run-facts" },
      el("dt", { text: "Type" }),
      el("dd", { text: asset.brick_class ? `${asset.type_name} (${asset.brick_class})` : asset.type_name }),
      el("dt", { text: "Path" }),
      el("dd", { class: "breadcrumb" }, path.flatMap((n, i) => [i ? " / " : null, n === state.name ? el("strong", { text: n }) : assetLink(n)])),
      asset.description ? [el("dt", { text: "Description" }), el("dd", { text: asset.description })] : null,
      el("dt", { text: "Children" }),
      el("dd", {}, children.length ? children.flatMap((c, i) => [i ? ", " : null, assetLink(c.name)]) : "none"),
    ),
  );
}

async function renderSensors() {
  const region = $("#asset-sensors");
  const recursive = $("#recursive").checked;
  const sensors = await withLoading(region, post("/asset/list-asset-sensors", { asset: state.name, recursive }));
  state.sensors = sensors;
  const typeNames = [...new Set(sensors.map((s) => s.type_name))];
  const latestLists = await Promise.all(typeNames.map((type_name) => post("/sensor/latest-readings", { type_name })));
  const latest = new Map();
  for (const r of latestLists.flat()) {
    if (!latest.has(r.unique_identifier)) latest.set(r.unique_identifier, []);
    latest.get(r.unique_identifier).push(r);
  }
  replace(
    region,
    table(
      `Sensors attached now (times in ${timeZoneName()})`,
      [
        { label: "Sensor", render: (s) => el("a", { href: `/sensors.html?sensor=${encodeURIComponent(s.unique_identifier)}`, text: s.unique_identifier }) },
        { label: "Type", render: (s) => s.type_name },
        { label: "Asset", render: (s) => (s.asset === state.name ? s.asset : assetLink(s.asset)) },
        { label: "Attached since", render: (s) => formatTime(s.installation_datetime) },
        {
          label: "Latest values",
          wrap: true,
          render: (s) => {
            const values = latest.get(s.unique_identifier) || [];
            if (!values.length) return el("span", { class: "muted", text: "no readings" });
            return el(
              "ul",
              { class: "plain latest-values" },
              values.map((r) => el("li", {}, `${r.measure_name}: `, el("strong", { text: `${formatValue(r.value)}${r.units ? ` ${r.units}` : ""}` }), el("span", { class: "muted", text: ` at ${formatTime(r.timestamp)}` }))),
            );
          },
        },
      ],
      sensors,
      { empty: recursive ? "No sensors are attached to this asset or below it." : "No sensors are attached to this asset." },
    ),
  );
  fillSelect($("#n-target"), [THIS_ASSET, ...sensors.map((s) => s.unique_identifier)]);
}

async function listAnnotations() {
  const { from, to } = state.range;
  return post("/annotation/list-annotations", { asset: state.name, recursive: $("#recursive").checked, dt_from: from.toISOString(), dt_to: to.toISOString() });
}

function renderAnnotations(annotations) {
  replace(
    $("#annotation-list"),
    table(
      `Annotations (times in ${timeZoneName()})`,
      [
        { label: "From", render: (a) => formatTime(a.dt_from) },
        { label: "To", render: (a) => (a.dt_to ? formatTime(a.dt_to) : "") },
        { label: "On", render: (a) => a.asset ?? a.unique_identifier },
        { label: "Text", render: (a) => a.text, wrap: true },
        { label: "Tags", render: (a) => a.tags.join(", ") },
        { label: "By", render: (a) => a.author },
        {
          label: "Actions",
          render: (a) =>
            el("button", {
              type: "button",
              class: "secondary small",
              text: "Delete",
              "data-editor-only": "",
              "aria-label": `Delete annotation ${a.text}`,
              onclick: () => deleteAnnotation(a),
            }),
        },
      ],
      annotations,
      { empty: "No annotations in this range." },
    ),
  );
}

/** One chart per measure of the sensors' types, one line per sensor, annotations drawn. */
async function renderCharts(annotations) {
  const region = $("#asset-charts");
  if (state.group) state.group.destroy();
  state.group = new ChartGroup("asset");
  replace(region);
  const { from, to } = state.range;
  const measures = new Map();
  for (const sensor of state.sensors) {
    const type = state.types.find((t) => t.name === sensor.type_name);
    for (const m of type ? type.measures : []) {
      if (m.datatype === "string") continue;
      const key = `${m.name}\u0000${m.units ?? ""}`;
      if (!measures.has(key)) measures.set(key, { measure: m, sensors: [] });
      measures.get(key).sensors.push(sensor);
    }
  }
  if (!measures.size) {
    replace(region, el("p", { class: "muted", text: "No numeric measures to plot." }));
    return;
  }
  const marks = annotations.map((a) => ({ from: seconds(a.dt_from), to: a.dt_to ? seconds(a.dt_to) : null, text: `${a.asset ?? a.unique_identifier}: ${a.text}` }));
  const groups = [...measures.values()];
  const lists = await withLoading(
    region,
    Promise.all(
      groups.map(({ measure, sensors }) =>
        Promise.all(
          sensors.map((s) =>
            post("/sensor/sensor-readings", { unique_identifier: s.unique_identifier, measure_name: measure.name, dt_from: from.toISOString(), dt_to: to.toISOString() }),
          ),
        ),
      ),
    ),
    "Loading readings…",
  );
  groups.forEach(({ measure, sensors }, gi) => {
    const series = sensors.map((s, si) => ({ label: s.unique_identifier, points: lists[gi][si].map((r) => [seconds(r.timestamp), toNumber(r.value)]) }));
    const count = series.reduce((sum, s) => sum + s.points.length, 0);
    timeSeriesChart(region, {
      title: measureLabel(measure),
      yLabel: measure.units || "",
      series,
      group: state.group,
      annotations: marks,
      note: count ? `${count.toLocaleString()} readings.` : "No readings in this range.",
    });
  });
}

async function renderRange() {
  try {
    const annotations = await listAnnotations();
    renderAnnotations(annotations);
    await renderCharts(annotations);
  } catch (error) {
    replace($("#asset-charts"), errorBox(error));
  }
}

async function renderMoves() {
  const moves = await post("/asset/list-asset-moves", { name: state.name });
  replace(
    $("#asset-moves"),
    table(
      `Newest first (times in ${timeZoneName()})`,
      [
        { label: "Since", render: (m) => formatTime(m.moved_at) },
        { label: "Parent", render: (m) => (m.parent ? assetLink(m.parent) : el("span", { class: "muted", text: "none (a root, or since deleted)" })) },
      ],
      moves,
    ),
  );
}

async function deleteAnnotation(annotation) {
  if (!(await confirmDialog(`Delete the annotation “${annotation.text}”?`))) return;
  try {
    await post("/annotation/delete-annotation", { id: annotation.id });
    await renderRange();
  } catch (error) {
    $("#annotation-list").prepend(errorBox(error));
  }
}

async function main() {
  await startPage("assets");
  state.name = queryParams().get("name");
  if (!state.name) {
    replace($("#asset-summary"), el("p", {}, "No asset chosen. ", el("a", { href: "/assets.html", text: "Choose one in the asset tree." })));
    return;
  }
  document.title = `${state.name} · Assets · DTBase`;
  $("#asset-heading").textContent = state.name;
  initRange($("#a-from"), $("#a-to"), { days: 7 });
  $("#n-from").value = toLocalInput(new Date());
  try {
    state.types = await listSensorTypes();
    await renderSummary();
    await renderSensors();
  } catch (error) {
    replace($("#asset-summary"), errorBox(error));
    return;
  }
  state.range = readRange($("#a-from"), $("#a-to"));
  await Promise.all([renderRange(), renderMoves().catch((error) => replace($("#asset-moves"), errorBox(error)))]);

  $("#recursive").addEventListener("change", async () => {
    try {
      await renderSensors();
      await renderRange();
    } catch (error) {
      replace($("#asset-sensors"), errorBox(error));
    }
  });
  bindForm($("#range-form"), async () => {
    state.range = readRange($("#a-from"), $("#a-to"));
    await renderRange();
    return "";
  });
  bindForm($("#annotation-form"), async (form) => {
    const target = form.elements.target.value;
    const body = {
      dt_from: localInputToIso(form.elements.dt_from.value),
      text: form.elements.text.value.trim(),
      tags: form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    if (form.elements.dt_to.value) body.dt_to = localInputToIso(form.elements.dt_to.value);
    if (target === THIS_ASSET) body.asset = state.name;
    else body.unique_identifier = target;
    await post("/annotation/insert-annotation", body);
    form.elements.text.value = "";
    form.elements.tags.value = "";
    form.elements.dt_to.value = "";
    await renderRange();
    return "Annotation added.";
  });
}

main();
