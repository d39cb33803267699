// Notification channels: list, add (webhook or email), delete, send a test and show its
// outcome; the deliveries with their status, attempts and last error.

import { get, post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, $$, replace, table, clip, withLoading, errorBox, bindForm, confirmDialog, fillSelect } from "../dom.js";
import { formatTime, timeZoneName } from "../format.js";

const state = { channels: [], isAdmin: false };
const STATUS_CLASS = { delivered: "fresh", pending: "stale", dead: "bad" };

function target(channel) {
  return channel.kind === "email" ? (channel.recipients || []).join(", ") : channel.url;
}

function renderChannels() {
  const columns = [
    { label: "Name", render: (c) => c.name },
    { label: "Kind", render: (c) => c.kind },
    { label: "Sends to", render: (c) => clip(target(c), "span", { class: "mono" }) },
    { label: "Signed", render: (c) => (c.kind === "webhook" ? (c.has_secret ? "yes" : "no") : "—") },
  ];
  if (state.isAdmin) {
    columns.push({
      label: "Actions",
      render: (c) =>
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "small", text: "Send test", "aria-label": `Send a test to ${c.name}`, onclick: (event) => sendTest(c.name, event.currentTarget) }),
          el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete channel ${c.name}`, onclick: () => deleteChannel(c.name) }),
        ),
    });
  }
  replace($("#channel-list"), table("Notification channels", columns, state.channels, { empty: "No channels yet." }));
  const select = $("#delivery-channel");
  const chosen = select.value;
  fillSelect(select, state.channels.map((c) => c.name), { placeholder: "Every channel" });
  select.value = state.channels.some((c) => c.name === chosen) ? chosen : "";
}

async function loadChannels() {
  const region = $("#channel-list");
  try {
    state.channels = await withLoading(region, get("/notification/list-channels"));
    renderChannels();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteChannel(name) {
  if (!(await confirmDialog(`Delete channel “${name}”? Its deliveries stay listed.`))) return;
  try {
    await post("/notification/delete-channel", { name });
    await loadChannels();
  } catch (error) {
    $("#channel-list").prepend(errorBox(error));
  }
}

/** The test's outcome in words: what the receiver answered, or why nothing arrived. */
export function describeTest(name, outcome) {
  const code = outcome.status_code === null ? "" : `HTTP ${outcome.status_code}, `;
  if (outcome.delivered) return `Test delivered to “${name}” (${code}${outcome.duration_ms} ms).`;
  return `Test to “${name}” failed: ${code}${outcome.error}`;
}

async function sendTest(name, button) {
  const status = $("#test-outcome");
  status.className = "form-status";
  status.setAttribute("role", "status");
  status.textContent = `Sending a test to “${name}”…`;
  button.disabled = true;
  try {
    const outcome = await post("/notification/test-channel", { name });
    status.className = `form-status ${outcome.delivered ? "success" : "error"}`;
    if (!outcome.delivered) status.setAttribute("role", "alert");
    status.textContent = describeTest(name, outcome);
  } catch (error) {
    status.className = "form-status error";
    status.setAttribute("role", "alert");
    status.textContent = error.detail || error.message;
  } finally {
    button.disabled = false;
    await loadDeliveries();
  }
}

function renderDeliveries(rows) {
  replace(
    $("#delivery-list"),
    table(
      `${rows.length} deliver${rows.length === 1 ? "y" : "ies"} (times in ${timeZoneName()})`,
      [
        { label: "Created", render: (d) => el("time", { datetime: d.created_at, text: formatTime(d.created_at) }) },
        { label: "Channel", render: (d) => d.channel },
        { label: "Transition", render: (d) => d.transition ?? "—" },
        { label: "Status", render: (d) => el("span", { class: `badge ${STATUS_CLASS[d.status] || ""}`, text: d.status }) },
        { label: "Attempts", render: (d) => String(d.attempts) },
        { label: "Last reply", render: (d) => (d.last_status_code === null ? "—" : String(d.last_status_code)) },
        {
          label: "Error / next attempt",
          wrap: true,
          render: (d) =>
            d.status === "pending" && d.next_attempt_at
              ? `${d.last_error ? `${d.last_error}; ` : ""}next attempt ${formatTime(d.next_attempt_at)}`
              : d.last_error || "—",
        },
      ],
      rows,
      { empty: "Nothing sent yet.", className: "deliveries" },
    ),
  );
}

async function loadDeliveries() {
  const region = $("#delivery-list");
  const form = $("#delivery-filter");
  const body = {};
  if (form.elements.channel.value) body.channel = form.elements.channel.value;
  if (form.elements.status.value) body.status = form.elements.status.value;
  try {
    renderDeliveries(await withLoading(region, post("/notification/list-deliveries", body)));
  } catch (error) {
    replace(region, errorBox(error));
  }
}

function showKindFields(kind) {
  for (const node of $$("#add-channel-form [data-kind]")) {
    node.hidden = node.dataset.kind !== kind;
    for (const input of node.querySelectorAll("input")) input.required = node.dataset.kind === kind && input.name !== "secret";
  }
}

async function main() {
  const user = await startPage("channels");
  state.isAdmin = Boolean(user && user.is_admin);
  const kind = $("#channel-kind");
  kind.addEventListener("change", () => showKindFields(kind.value));
  showKindFields(kind.value);

  bindForm($("#add-channel-form"), async (form) => {
    const fields = form.elements;
    const body = { name: fields.name.value.trim(), kind: fields.kind.value };
    if (body.kind === "webhook") {
      body.url = fields.url.value.trim();
      if (fields.secret.value) body.secret = fields.secret.value;
    } else {
      body.recipients = fields.recipients.value.split(/[,;\s]+/).filter(Boolean);
    }
    if (fields.template.value.trim()) body.template = fields.template.value;
    await post("/notification/insert-channel", body);
    form.reset();
    showKindFields(kind.value);
    await loadChannels();
    return `Channel “${body.name}” added.`;
  });

  bindForm($("#delivery-filter"), async () => {
    await loadDeliveries();
    return "";
  });
  $("#delivery-filter").addEventListener("change", () => loadDeliveries());

  await loadChannels();
  await loadDeliveries();
}

main();
