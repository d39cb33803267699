// Locations: schemas, adding schemas (existing or new identifiers) and locations, a table per schema.

import { post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, fillSelect, confirmDialog, queryParams } from "../dom.js";
import { formatValue } from "../format.js";
import { listLocationSchemas, listLocationIdentifiers, measureLabel } from "../catalog.js";
import { definitionList, coordinateInputs } from "../editors.js";

const state = { schemas: [], coordinates: null };
const identifierEditor = definitionList("identifier");

function renderSchemas() {
  replace(
    $("#schema-list"),
    table(
      "Schemas and their identifiers",
      [
        { label: "Schema", render: (s) => s.name },
        { label: "Description", render: (s) => s.description ?? "", wrap: true },
        { label: "Identifiers", render: (s) => s.identifiers.map((i) => `${measureLabel(i)}: ${i.datatype}`).join(", "), wrap: true },
        {
          label: "Actions",
          render: (s) =>
            el("button", {
              type: "button",
              class: "secondary small",
              text: "Delete",
              "data-editor-only": "",
              "aria-label": `Delete schema ${s.name}`,
              onclick: () => deleteSchema(s.name),
            }),
        },
      ],
      state.schemas,
      { empty: "No location schemas yet. Add one below." },
    ),
  );
  fillSelect($("#location-schema"), state.schemas.map((s) => s.name), { placeholder: state.schemas.length ? "" : "Add a schema first" });
  renderCoordinateInputs();
}

function renderCoordinateInputs() {
  const schema = state.schemas.find((s) => s.name === $("#location-schema").value);
  state.coordinates = schema ? coordinateInputs(schema, "loc") : null;
  replace($("#location-coordinates"), state.coordinates ? state.coordinates.node : el("p", { class: "muted", text: "Choose a schema." }));
}

async function renderLocationTables() {
  const region = $("#location-tables");
  const lists = await withLoading(region, Promise.all(state.schemas.map((s) => post("/location/list-locations", { schema_name: s.name }))));
  replace(
    region,
    state.schemas.length ? null : el("p", { class: "muted", text: "No schemas, so no locations yet." }),
    state.schemas.map((schema, i) =>
      el(
        "section",
        { class: "card", dataset: { schema: schema.name } },
        el("h3", { text: schema.name }),
        table(
          `Locations of ${schema.name}`,
          [
            { label: "Id", className: "num", render: (l) => String(l.id) },
            ...schema.identifiers.map((identifier) => ({
              label: measureLabel(identifier),
              className: identifier.datatype === "string" || identifier.datatype === "boolean" ? "" : "num",
              render: (l) => formatValue(l[identifier.name], identifier.datatype),
            })),
            {
              label: "Actions",
              render: (l) =>
                el("button", {
                  type: "button",
                  class: "secondary small",
                  text: "Delete",
                  "data-editor-only": "",
                  "aria-label": `Delete location ${l.id} of ${schema.name}`,
                  onclick: () => deleteLocation(schema, l),
                }),
            },
          ],
          lists[i],
          { empty: "No locations in this schema yet." },
        ),
      ),
    ),
  );
}

async function reload() {
  const region = $("#schema-list");
  try {
    const [schemas, identifiers] = await withLoading(region, Promise.all([listLocationSchemas(), listLocationIdentifiers()]));
    state.schemas = schemas;
    identifierEditor.setExisting(identifiers);
    renderSchemas();
    await renderLocationTables();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteSchema(name) {
  if (!(await confirmDialog(`Delete location schema “${name}”?`))) return;
  try {
    await post("/location/delete-location-schema", { schema_name: name });
    await reload();
  } catch (error) {
    $("#schema-list").prepend(errorBox(error));
  }
}

async function deleteLocation(schema, location) {
  if (!(await confirmDialog(`Delete location ${location.id} of “${schema.name}”?`))) return;
  const coordinates = Object.fromEntries(schema.identifiers.map((i) => [i.name, location[i.name]]));
  try {
    await post("/location/delete-location", { schema_name: schema.name, coordinates });
    await renderLocationTables();
  } catch (error) {
    $("#location-tables").prepend(errorBox(error));
  }
}

async function main() {
  await startPage("locations");
  $("#identifier-editor").append(identifierEditor.node);
  $("#location-schema").addEventListener("change", renderCoordinateInputs);

  bindForm($("#add-schema-form"), async (form) => {
    const name = form.elements.name.value.trim();
    await post("/location/insert-location-schema", {
      name,
      description: form.elements.description.value.trim() || null,
      identifiers: identifierEditor.read(),
    });
    form.reset();
    identifierEditor.reset();
    await reload();
    $("#location-schema").value = name;
    renderCoordinateInputs();
    return `Schema “${name}” added.`;
  });

  bindForm($("#add-location-form"), async (form) => {
    if (!state.coordinates) throw new Error("Choose a location schema.");
    const schemaName = form.elements.schema_name.value;
    await post("/location/insert-location-for-schema", { schema_name: schemaName, coordinates: state.coordinates.read() });
    await renderLocationTables();
    renderCoordinateInputs();
    return `Location added to “${schemaName}”.`;
  });

  await reload();
  const wanted = queryParams().get("schema");
  if (wanted && state.schemas.some((s) => s.name === wanted)) {
    $("#location-schema").value = wanted;
    renderCoordinateInputs();
  }
}

main();
