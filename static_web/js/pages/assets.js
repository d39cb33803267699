// Assets: the asset tree (expand and collapse), asset types, and for editors adding
// types and assets, moving assets and attaching sensors.

import { get, post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, $$, replace, table, withLoading, errorBox, bindForm, fillSelect, confirmDialog } from "../dom.js";
import { localInputToIso } from "../format.js";
import { listSensorsWithTypes } from "../catalog.js";

const ROOT = "(none: a root)";
const state = { tree: [], types: [], collapsed: new Set() };

function assetHref(name) {
  return `/asset.html?name=${encodeURIComponent(name)}`;
}

function names(nodes) {
  return nodes.flatMap((n) => [n.name, ...names(n.children)]);
}

function treeNode(node, level) {
  const open = !state.collapsed.has(node.name);
  const hasChildren = node.children.length > 0;
  const toggle = hasChildren
    ? el("button", {
        type: "button",
        class: "tree-toggle secondary small",
        "aria-label": `${open ? "Collapse" : "Expand"} ${node.name}`,
        text: open ? "▾" : "▸",
        onclick: () => {
          if (open) state.collapsed.add(node.name);
          else state.collapsed.delete(node.name);
          renderTree();
        },
      })
    : el("span", { class: "tree-leaf", "aria-hidden": "true", text: "•" });
  return el(
    "li",
    { role: "treeitem", "aria-level": level, "aria-expanded": hasChildren ? String(open) : undefined, dataset: { asset: node.name } },
    el(
      "div",
      { class: "tree-row" },
      toggle,
      " ",
      el("a", { href: assetHref(node.name), text: node.name }),
      " ",
      el("span", { class: "badge", text: node.type_name, title: node.brick_class || undefined }),
      node.description ? el("span", { class: "muted", text: ` ${node.description}` }) : null,
    ),
    hasChildren && open ? el("ul", { role: "group" }, node.children.map((child) => treeNode(child, level + 1))) : null,
  );
}

function renderTree() {
  replace(
    $("#asset-tree"),
    state.tree.length
      ? el("ul", { role: "tree", class: "asset-tree", "aria-label": "Assets" }, state.tree.map((n) => treeNode(n, 1)))
      : el("p", { class: "muted", text: "No assets yet. Add an asset type, then an asset." }),
  );
}

function renderTypes() {
  replace(
    $("#type-list"),
    table(
      "Asset types",
      [
        { label: "Type", render: (t) => t.name },
        { label: "Brick class", render: (t) => t.brick_class ?? "" },
        {
          label: "Actions",
          render: (t) =>
            el("button", {
              type: "button",
              class: "secondary small",
              text: "Delete",
              "data-editor-only": "",
              "aria-label": `Delete asset type ${t.name}`,
              onclick: () => deleteType(t.name),
            }),
        },
      ],
      state.types,
      { empty: "No asset types yet." },
    ),
  );
  fillSelect($("#asset-type"), state.types.map((t) => t.name), { placeholder: state.types.length ? "" : "Add a type first" });
}

function renderSelects() {
  const all = names(state.tree);
  fillSelect($("#asset-parent"), [ROOT, ...all]);
  fillSelect($("#move-asset"), all, { placeholder: all.length ? "" : "No assets yet" });
  fillSelect($("#move-parent"), [ROOT, ...all]);
  fillSelect($("#attach-asset"), all, { placeholder: all.length ? "" : "No assets yet" });
}

async function reload() {
  const region = $("#asset-tree");
  try {
    const [tree, types] = await withLoading(region, Promise.all([post("/asset/asset-tree", {}), get("/asset/list-asset-types")]));
    state.tree = tree;
    state.types = types;
    renderTree();
    renderTypes();
    renderSelects();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteType(name) {
  if (!(await confirmDialog(`Delete asset type “${name}”?`))) return;
  try {
    await post("/asset/delete-asset-type", { name });
    await reload();
  } catch (error) {
    $("#type-list").prepend(errorBox(error));
  }
}

const parentValue = (value) => (value === ROOT || value === "" ? null : value);

async function main() {
  await startPage("assets");
  $("#expand-all").addEventListener("click", () => {
    state.collapsed.clear();
    renderTree();
  });
  $("#collapse-all").addEventListener("click", () => {
    state.collapsed = new Set($$("#asset-tree li[aria-expanded]").map((li) => li.dataset.asset));
    renderTree();
  });

  bindForm($("#add-type-form"), async (form) => {
    const name = form.elements.name.value.trim();
    await post("/asset/insert-asset-type", { name, brick_class: form.elements.brick_class.value.trim() || null });
    form.reset();
    await reload();
    return `Asset type “${name}” added.`;
  });

  bindForm($("#add-asset-form"), async (form) => {
    const name = form.elements.name.value.trim();
    await post("/asset/insert-asset", {
      name,
      type_name: form.elements.type_name.value,
      parent: parentValue(form.elements.parent.value),
      description: form.elements.description.value.trim() || null,
    });
    form.elements.name.value = "";
    form.elements.description.value = "";
    await reload();
    return `Asset “${name}” added.`;
  });

  bindForm($("#move-form"), async (form) => {
    const name = form.elements.name.value;
    const parent = parentValue(form.elements.parent.value);
    await post("/asset/move-asset", { name, parent });
    await reload();
    return parent ? `“${name}” moved under “${parent}”.` : `“${name}” is now a root.`;
  });

  bindForm($("#attach-form"), async (form) => {
    const body = { unique_identifier: form.elements.unique_identifier.value, asset: form.elements.asset.value };
    if (form.elements.installation_datetime.value) body.installation_datetime = localInputToIso(form.elements.installation_datetime.value);
    await post("/asset/attach-sensor", body);
    return `Sensor “${body.unique_identifier}” attached to “${body.asset}”.`;
  });

  await reload();
  try {
    const sensors = await listSensorsWithTypes();
    fillSelect($("#attach-sensor"), sensors.map((s) => s.unique_identifier), { placeholder: sensors.length ? "" : "No sensors yet" });
  } catch (error) {
    $("#attach-form").prepend(errorBox(error));
  }
}

main();
