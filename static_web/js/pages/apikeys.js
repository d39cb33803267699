// API keys (admins): list with scopes, limits and last use; create (the key shown once,
// with a copy button), rotate and revoke.

import { get, post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, confirmDialog } from "../dom.js";
import { formatTime, localInputToIso } from "../format.js";

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

function state(key) {
  if (key.revoked_at) return el("span", { class: "badge bad", text: "revoked" });
  if (key.expires_at && new Date(key.expires_at) <= new Date()) return el("span", { class: "badge stale", text: "expired" });
  return el("span", { class: "badge fresh", text: "active" });
}

function limits(key) {
  const parts = [];
  if (key.sensors) parts.push(`sensors: ${key.sensors.join(", ")}`);
  if (key.sensor_types) parts.push(`types: ${key.sensor_types.join(", ")}`);
  return parts.join("; ") || "any sensor";
}

function showNewKey(reply) {
  $("#new-key-value").textContent = reply.key;
  $("#new-key").hidden = false;
}

async function loadKeys() {
  const region = $("#key-list");
  try {
    const keys = await withLoading(region, get("/apikey/list-api-keys"));
    replace(
      region,
      table(
        `${keys.length} key${keys.length === 1 ? "" : "s"}`,
        [
          { label: "Name", render: (k) => k.name },
          { label: "Prefix", render: (k) => el("code", { text: `${k.prefix}…` }) },
          { label: "Scopes", render: (k) => k.scopes.join(", ") },
          { label: "Limits", render: limits, wrap: true },
          { label: "Created", render: (k) => `${formatTime(k.created_at)} by ${k.created_by}` },
          { label: "Last used", render: (k) => (k.last_used_at ? `${formatTime(k.last_used_at)}${k.last_used_address ? ` from ${k.last_used_address}` : ""}` : "never") },
          { label: "Expires", render: (k) => (k.expires_at ? formatTime(k.expires_at) : "never") },
          { label: "State", render: state },
          {
            label: "Actions",
            render: (k) =>
              k.revoked_at || k.name === "built-in services"
                ? ""
                : el(
                    "span",
                    { class: "actions" },
                    el("button", { type: "button", class: "secondary small", text: "Rotate", "aria-label": `Rotate key ${k.name}`, onclick: () => rotate(k.name) }),
                    el("button", { type: "button", class: "danger small", text: "Revoke", "aria-label": `Revoke key ${k.name}`, onclick: () => revoke(k.name) }),
                  ),
          },
        ],
        keys,
        { empty: "No API keys yet." },
      ),
    );
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function revoke(name) {
  if (!(await confirmDialog(`Revoke the key ${name}? Whatever uses it stops working at once.`, "Revoke"))) return;
  try {
    await post("/apikey/revoke-api-key", { name });
  } catch (error) {
    $("#key-list").prepend(errorBox(error));
  }
  await loadKeys();
}

async function rotate(name) {
  if (!(await confirmDialog(`Make a new key for ${name}? The old one keeps working for a day.`, "Rotate"))) return;
  try {
    showNewKey(await post("/apikey/rotate-api-key", { name }));
  } catch (error) {
    $("#key-list").prepend(errorBox(error));
  }
  await loadKeys();
}

async function main() {
  const user = await startPage("apikeys");
  if (!user.is_admin) return;
  bindForm($("#create-key-form"), async (form) => {
    const scopes = [...form.querySelectorAll("input[name=scopes]:checked")].map((box) => box.value);
    if (!scopes.length) throw new Error("Choose at least one scope.");
    const body = { name: form.elements.name.value.trim(), scopes };
    if (form.elements.expires_at.value) body.expires_at = localInputToIso(form.elements.expires_at.value);
    if (list(form.elements.sensors.value).length) body.sensors = list(form.elements.sensors.value);
    if (list(form.elements.sensor_types.value).length) body.sensor_types = list(form.elements.sensor_types.value);
    const reply = await post("/apikey/create-api-key", body);
    form.reset();
    showNewKey(reply);
    await loadKeys();
    return `Key ${reply.name} created.`;
  });
  $("#copy-key").addEventListener("click", async () => {
    await navigator.clipboard.writeText($("#new-key-value").textContent);
    $("#copy-key").textContent = "Copied";
  });
  await loadKeys();
}

main();
