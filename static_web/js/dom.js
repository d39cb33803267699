// Small DOM helpers: building elements, tables, forms with loading and error states.

import { ApiError } from "./api.js";

/**
 * Create an element. `attrs` keys: `class`, `text`, `dataset`, `on<Event>` handlers,
 * booleans (hidden, disabled, ...) and plain attributes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2).toLowerCase(), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Replace the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

let idCounter = 0;
export function uniqueId(prefix = "f") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: returns the wrapper; the control gets an id and a label. */
export function field(labelText, control, hint = "") {
  if (!control.id) control.id = uniqueId("field");
  const wrapper = el("div", { class: "field" }, el("label", { for: control.id, text: labelText }), control);
  if (hint) {
    const hintId = `${control.id}-hint`;
    wrapper.append(el("small", { id: hintId, class: "hint", text: hint }));
    control.setAttribute("aria-describedby", hintId);
  }
  return wrapper;
}

/** A <select> filled with options: items of `{value, label}` or strings. */
export function select(name, items, { placeholder = "", value = "", required = false } = {}) {
  const node = el("select", { name, required });
  if (placeholder) node.append(el("option", { value: "", text: placeholder }));
  for (const item of items) {
    const option = typeof item === "string" ? { value: item, label: item } : item;
    node.append(el("option", { value: option.value, text: option.label, selected: option.value === value }));
  }
  return node;
}

/** Fill an existing <select> with options, keeping the current value when possible. */
export function fillSelect(node, items, { placeholder = "" } = {}) {
  const current = node.value;
  node.replaceChildren();
  if (placeholder) node.append(el("option", { value: "", text: placeholder }));
  for (const item of items) {
    const option = typeof item === "string" ? { value: item, label: item } : item;
    node.append(el("option", { value: option.value, text: option.label }));
  }
  if (Array.from(node.options).some((o) => o.value === current)) node.value = current;
}

/** Text cut with an ellipsis where it would not fit (CSS `.clip`); the title has all of it. */
export function clip(text, tag = "span", attrs = {}) {
  const value = String(text ?? "");
  return el(tag, { ...attrs, class: `clip ${attrs.class || ""}`.trim(), title: value, text: value });
}

/**
 * A table with a caption. `columns`: `{label, render(row) -> Node|string, className?, wrap?}`.
 * Text cells (names, identifiers) stay on one line, cut with an ellipsis, so a long name
 * never pushes the other columns out of the card; `wrap: true` columns (descriptions,
 * notes) wrap instead.
 */
export function table(caption, columns, rows, { empty = "Nothing to show yet.", className = "" } = {}) {
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.className, text: c.label }))));
  const body = el("tbody");
  for (const row of rows) {
    body.append(
      el(
        "tr",
        {},
        columns.map((c) => {
          const content = c.render(row);
          if (c.wrap) return el("td", { class: `${c.className || ""} wrap`.trim() }, content);
          return el("td", { class: c.className }, typeof content === "string" && content ? clip(content) : content);
        }),
      ),
    );
  }
  const node = el("table", { class: `data ${className}`.trim() }, el("caption", { text: caption }), head, body);
  if (!rows.length) {
    body.append(el("tr", { class: "empty" }, el("td", { colspan: columns.length, text: empty })));
  }
  return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, node);
}

/** Mark a region busy while `promise` runs, with a visible "Loading…" line. */
export async function withLoading(region, promise, text = "Loading…") {
  region.setAttribute("aria-busy", "true");
  const indicator = el("p", { class: "loading", role: "status", text });
  region.prepend(indicator);
  try {
    return await promise;
  } finally {
    indicator.remove();
    region.removeAttribute("aria-busy");
  }
}

/** Show an error inside a region (in place of its content). */
export function showRegionError(region, error) {
  replace(region, errorBox(error));
}

export function errorBox(error) {
  const message = error instanceof ApiError ? error.detail : String(error && error.message ? error.message : error);
  return el("p", { class: "error", role: "alert", text: message });
}

/**
 * Wire a form: on submit, run `handler(form)` with the submit button disabled and a
 * "Working…" state; show the API's detail next to the form on failure and the returned
 * message on success.
 */
export function bindForm(form, handler, { busyText = "Working…" } = {}) {
  let status = form.querySelector(":scope > .form-status");
  if (!status) {
    status = el("p", { class: "form-status", role: "status", "aria-live": "polite" });
    form.append(status);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const button = form.querySelector("button[type=submit]");
    const original = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.textContent = busyText;
    }
    form.setAttribute("aria-busy", "true");
    status.className = "form-status";
    status.textContent = "";
    status.setAttribute("role", "status");
    try {
      const message = await handler(form, event.submitter);
      if (message) {
        status.className = "form-status success";
        status.textContent = message;
      }
    } catch (error) {
      status.className = "form-status error";
      status.setAttribute("role", "alert");
      status.textContent = error instanceof ApiError ? error.detail : String(error.message || error);
      if (!(error instanceof ApiError)) console.warn(error);
    } finally {
      form.removeAttribute("aria-busy");
      if (button) {
        // A handler may lock the form for good (e.g. a service found to be unavailable).
        button.disabled = button.hasAttribute("data-locked");
        button.textContent = original;
      }
    }
  });
  return status;
}

/** An accessible confirmation dialog; resolves to true when confirmed. */
export function confirmDialog(message, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    const dialog = el(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-text" },
      el("p", { id: "confirm-text", text: message }),
      el(
        "form",
        { method: "dialog", class: "actions" },
        el("button", { type: "submit", value: "cancel", class: "secondary", text: "Cancel" }),
        el("button", { type: "submit", value: "confirm", class: "danger", text: confirmLabel }),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();
  });
}

/** Read URL query parameters. */
export function queryParams() {
  return new URLSearchParams(location.search);
}

/** Replace the URL's query string without reloading (keeps pages linkable). */
export function setQueryParams(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, value);
  }
  const query = search.toString();
  history.replaceState(null, "", location.pathname + (query ? `?${query}` : ""));
}

/** Trigger a download of `blob` as `filename`. */
export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
