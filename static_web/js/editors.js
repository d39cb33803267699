// Form parts used by more than one page: a list of (name, units, datatype) rows that
// picks existing definitions or declares new ones (sensor measures, location
// identifiers), and typed coordinate inputs for a location schema.

import { el, field, select, uniqueId } from "./dom.js";
import { parseTyped } from "./format.js";

const DATATYPES = ["float", "integer", "boolean", "string"];
const NEW = "__new__";

function label(def) {
  return `${def.name}${def.units ? ` (${def.units})` : ""} · ${def.datatype}`;
}

/**
 * An editable list of definitions. `noun` is "measure" or "identifier".
 * Returns `{node, setExisting(defs), read() -> [{name, units, datatype}], reset()}`.
 */
export function definitionList(noun, { minRows = 1 } = {}) {
  let existing = [];
  const rows = el("div", { class: "definition-rows" });
  const addButton = el("button", { type: "button", class: "secondary small", text: `Add another ${noun}` });
  const node = el("fieldset", {}, el("legend", { text: `${noun[0].toUpperCase()}${noun.slice(1)}s` }), rows, el("div", { class: "actions" }, addButton));

  function addRow() {
    const index = rows.children.length + 1;
    const choice = select(`${noun}_choice`, [
      { value: NEW, label: `New ${noun}…` },
      ...existing.map((def, i) => ({ value: String(i), label: label(def) })),
    ]);
    const name = el("input", { name: `${noun}_name`, type: "text", required: true, autocomplete: "off" });
    const units = el("input", { name: `${noun}_units`, type: "text", autocomplete: "off", placeholder: "none" });
    const datatype = select(`${noun}_datatype`, DATATYPES);
    const remove = el("button", { type: "button", class: "secondary small", text: "Remove", "aria-label": `Remove ${noun} ${index}` });
    const newFields = [
      field("Name", name),
      field("Units", units),
      field("Datatype", datatype),
    ];
    const row = el(
      "div",
      { class: "measure-row", dataset: { row: String(index) } },
      field(`${noun[0].toUpperCase()}${noun.slice(1)} ${index}`, choice),
      ...newFields,
      el("div", { class: "actions" }, remove),
    );
    const sync = () => {
      const isNew = choice.value === NEW;
      newFields.forEach((f) => (f.hidden = !isNew));
      name.required = isNew;
    };
    choice.addEventListener("change", sync);
    remove.addEventListener("click", () => {
      if (rows.children.length > minRows) row.remove();
      else {
        choice.value = NEW;
        name.value = "";
        units.value = "";
        sync();
      }
    });
    row.read = () => {
      if (choice.value !== NEW) return { ...existing[Number(choice.value)] };
      return { name: name.value.trim(), units: units.value.trim() === "" ? null : units.value.trim(), datatype: datatype.value };
    };
    rows.append(row);
    sync();
    return row;
  }

  addButton.addEventListener("click", () => {
    const row = addRow();
    row.querySelector("select").focus();
  });

  function reset() {
    rows.replaceChildren();
    for (let i = 0; i < minRows; i += 1) addRow();
  }
  reset();

  return {
    node,
    setExisting(defs) {
      existing = defs;
      // Rebuild the choices of every row, keeping new rows as they are.
      for (const row of rows.children) {
        const choice = row.querySelector("select");
        const current = choice.value;
        choice.replaceChildren(
          el("option", { value: NEW, text: `New ${noun}…` }),
          ...existing.map((def, i) => el("option", { value: String(i), text: label(def) })),
        );
        choice.value = Number(current) < existing.length ? current : NEW;
        choice.dispatchEvent(new Event("change"));
      }
    },
    read() {
      return Array.from(rows.children).map((row) => row.read());
    },
    reset,
  };
}

/**
 * Inputs for one value per identifier of a schema, typed by datatype.
 * Returns `{node, read() -> {identifier: value}}`.
 */
export function coordinateInputs(schema, prefix = "coord") {
  const inputs = schema.identifiers.map((identifier) => {
    const id = uniqueId(prefix);
    let control;
    if (identifier.datatype === "boolean") {
      control = el("input", { id, type: "checkbox", name: identifier.name });
      const wrap = el("div", { class: "check" }, control, el("label", { for: id, text: identifier.name }));
      return { identifier, control, node: el("div", { class: "field" }, wrap) };
    }
    const numeric = identifier.datatype === "float" || identifier.datatype === "integer";
    control = el("input", {
      id,
      name: identifier.name,
      type: numeric ? "number" : "text",
      step: identifier.datatype === "integer" ? "1" : numeric ? "any" : undefined,
      required: true,
      autocomplete: "off",
    });
    const text = `${identifier.name}${identifier.units ? ` (${identifier.units})` : ""}`;
    return { identifier, control, node: field(text, control, identifier.datatype) };
  });
  return {
    node: el("div", { class: "row" }, inputs.map((i) => i.node)),
    read() {
      const coordinates = {};
      for (const { identifier, control } of inputs) {
        coordinates[identifier.name] =
          identifier.datatype === "boolean" ? control.checked : parseTyped(control.value.trim(), identifier.datatype);
      }
      return coordinates;
    },
  };
}
