// The "sensor type, then sensors and measures" picker shared by the readings and plots
// pages, and the time-range inputs with presets.

import { post } from "./api.js";
import { el, fillSelect, uniqueId } from "./dom.js";
import { toLocalInput, localInputToIso } from "./format.js";
import { listSensorTypesWithDerived, measureLabel } from "./catalog.js";

function checkbox(name, value, text, checked) {
  const id = uniqueId(name);
  return el(
    "div",
    { class: "check" },
    el("input", { id, type: "checkbox", name, value, checked }),
    el("label", { for: id, text }),
  );
}

/**
 * @param {{typeSelect: HTMLSelectElement, sensorsBox: HTMLFieldSetElement, measuresBox: HTMLFieldSetElement,
 *          measureFilter?: (m) => boolean, initial?: {type?: string, sensors?: string[], measures?: string[]}}} parts
 */
export async function sensorPicker({ typeSelect, sensorsBox, measuresBox, measureFilter = () => true, initial = {} }) {
  const types = await listSensorTypesWithDerived();
  let sensors = [];
  fillSelect(
    typeSelect,
    types.map((t) => t.name),
    { placeholder: types.length ? "" : "No sensor types yet" },
  );
  if (initial.type && types.some((t) => t.name === initial.type)) typeSelect.value = initial.type;

  const legendOf = (box) => box.querySelector("legend");

  async function onTypeChange(first = false) {
    const type = types.find((t) => t.name === typeSelect.value);
    const sensorLegend = legendOf(sensorsBox);
    const measureLegend = legendOf(measuresBox);
    sensorsBox.replaceChildren(sensorLegend, el("p", { class: "loading", role: "status", text: "Loading sensors…" }));
    measuresBox.replaceChildren(measureLegend);
    if (!type) {
      sensorsBox.replaceChildren(sensorLegend, el("p", { class: "muted", text: "Add a sensor type first." }));
      return;
    }
    sensors = await post("/sensor/list-sensors", { type_name: type.name });
    const wantSensors = first && initial.sensors?.length ? new Set(initial.sensors) : null;
    sensorsBox.replaceChildren(
      sensorLegend,
      ...(sensors.length
        ? sensors.map((s) =>
            checkbox("sensor", s.unique_identifier, s.name ? `${s.unique_identifier} (${s.name})` : s.unique_identifier, wantSensors ? wantSensors.has(s.unique_identifier) : true),
          )
        : [el("p", { class: "muted", text: "No sensors of this type yet." })]),
    );
    const measures = type.measures.filter(measureFilter);
    const wantMeasures = first && initial.measures?.length ? new Set(initial.measures) : null;
    measuresBox.replaceChildren(
      measureLegend,
      ...(measures.length
        ? measures.map((m) => checkbox("measure", m.name, `${measureLabel(m)} · ${m.derived ? "derived" : m.datatype}`, wantMeasures ? wantMeasures.has(m.name) : true))
        : [el("p", { class: "muted", text: "This type has no measures that can be shown here." })]),
    );
  }
  typeSelect.addEventListener("change", () => onTypeChange(false));
  await onTypeChange(true);

  return {
    types,
    /** The chosen type, and the chosen sensors and measures (full objects). */
    selection() {
      const type = types.find((t) => t.name === typeSelect.value);
      const sensorIds = new Set(Array.from(sensorsBox.querySelectorAll("input:checked")).map((i) => i.value));
      const measureNames = new Set(Array.from(measuresBox.querySelectorAll("input:checked")).map((i) => i.value));
      return {
        type,
        sensors: sensors.filter((s) => sensorIds.has(s.unique_identifier)),
        measures: type ? type.measures.filter((m) => measureNames.has(m.name)) : [],
      };
    },
  };
}

/** Set two datetime-local inputs from URL values (ISO) or to the last `days` days. */
export function initRange(fromInput, toInput, { from, to, days = 1 } = {}) {
  const end = to ? new Date(to) : new Date(Date.now() + 60e3);
  const start = from ? new Date(from) : new Date(end.getTime() - days * 86400e3);
  fromInput.value = toLocalInput(start);
  toInput.value = toLocalInput(end);
}

/** Read two datetime-local inputs as Dates; throws a readable error when reversed. */
export function readRange(fromInput, toInput) {
  const from = new Date(localInputToIso(fromInput.value));
  // The "to" minute is inclusive: extend it to the end of that minute.
  const to = new Date(new Date(localInputToIso(toInput.value)).getTime() + 59999);
  if (from >= to) throw new Error("“From” must be before “To”.");
  return { from, to };
}
