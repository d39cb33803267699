// Alerts: open alerts (firing first, by severity) to acknowledge with a comment or to
// silence; the last week's history; the rules; and a rule editor whose backtest draws,
// on the sensor's plot, the intervals in which the rule would have fired.

import { get, post } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, $$, replace, table, clip, withLoading, errorBox, bindForm, confirmDialog, fillSelect } from "../dom.js";
import { formatTime, timeAgo, timeZoneName, formatValue } from "../format.js";
import { listSensorTypes, listSensorsWithTypes, measureLabel } from "../catalog.js";
import { timeSeriesChart } from "../charts.js";

const WEEK_MS = 7 * 86400e3;
const silenceHours = () => Number($("#silence-hours").value);
const PARAMS = {
  threshold: ["above", "below", "clear_above", "clear_below", "for_seconds"],
  no_data: ["no_data_seconds"],
  rate_of_change: ["max_change_per_hour"],
  forecast_deviation: ["consecutive_points", "model_name"],
};
const TEXT_PARAMS = new Set(["model_name"]);

const state = { rules: [], types: [], sensors: [], editing: null, chart: null };

const severityBadge = (severity) =>
  el("span", { class: `badge severity-${severity} ${severity === "critical" ? "bad" : severity === "warning" ? "stale" : ""}`, text: severity });
const stateBadge = (s) => el("span", { class: `badge state-${s} ${s === "firing" ? "bad" : s === "resolved" ? "fresh" : ""}`, text: s });
const when = (value) => (value ? el("time", { datetime: value, title: formatTime(value), text: timeAgo(value) }) : "—");

// ------------------------------------------------------------------ alerts

function alertColumns(open) {
  const columns = [
    { label: "Severity", render: (a) => severityBadge(a.severity) },
    { label: "State", render: (a) => stateBadge(a.state) },
    { label: "Rule", render: (a) => clip(a.rule_name) },
    { label: "Sensor", render: (a) => clip(a.unique_identifier) },
    { label: "Measure", render: (a) => a.measure_name },
    { label: open ? "Since" : "Started", render: (a) => when(a.fired_at || a.started_at) },
    { label: open ? "Last value" : "Resolved", className: open ? "num" : "", render: (a) => (open ? formatValue(a.last_value) : when(a.resolved_at)) },
    { label: "Message", render: (a) => a.message },
    {
      label: "Acknowledged",
      render: (a) => (a.acknowledged_by ? el("span", {}, a.acknowledged_by, a.comment ? el("span", { class: "muted", text: ` — ${a.comment}` }) : null) : "—"),
    },
  ];
  if (open) {
    columns.push({
      label: "Actions",
      render: (a) =>
        el(
          "div",
          { class: "actions", "data-editor-only": "" },
          a.state === "firing"
            ? el("button", { type: "button", class: "small", text: "Acknowledge", "aria-label": `Acknowledge alert ${a.id}`, onclick: () => acknowledge(a) })
            : null,
          el("button", { type: "button", class: "secondary small", text: "Silence", "aria-label": `Silence rule ${a.rule_name}`, onclick: () => silence(a.rule_name, silenceHours()) }),
        ),
    });
  }
  return columns;
}

async function loadAlerts() {
  const openRegion = $("#open-alerts");
  const historyRegion = $("#alert-history");
  try {
    const since = new Date(Date.now() - WEEK_MS).toISOString();
    const [all, past] = await withLoading(
      openRegion,
      Promise.all([post("/alert/list-alerts", {}), post("/alert/list-alerts", { state: "resolved", since })]),
    );
    const open = all.filter((a) => a.state !== "resolved");
    const firing = open.filter((a) => a.state === "firing").length;
    replace(
      openRegion,
      table(`${firing} firing, ${open.length} open (times in ${timeZoneName()})`, alertColumns(true), open, {
        empty: "No open alert.",
        className: "alerts-open",
      }),
    );
    replace(historyRegion, table(`${past.length} resolved in the last 7 days`, alertColumns(false), past, { empty: "Nothing resolved in the last 7 days.", className: "alerts-history" }));
  } catch (error) {
    replace(openRegion, errorBox(error));
  }
}

function acknowledge(alert) {
  const comment = el("textarea", { id: "ack-comment", name: "comment", rows: 3, maxlength: 2000 });
  const dialog = el(
    "dialog",
    { class: "confirm", "aria-labelledby": "ack-title" },
    el("h2", { id: "ack-title", text: `Acknowledge ${alert.rule_name} on ${alert.unique_identifier}` }),
    el(
      "form",
      { method: "dialog" },
      el("div", { class: "field" }, el("label", { for: "ack-comment", text: "Comment" }), comment),
      el(
        "div",
        { class: "actions" },
        el("button", { type: "submit", value: "cancel", class: "secondary", text: "Cancel" }),
        el("button", { type: "submit", value: "confirm", text: "Acknowledge" }),
      ),
    ),
  );
  dialog.addEventListener("close", async () => {
    const confirmed = dialog.returnValue === "confirm";
    const text = comment.value.trim();
    dialog.remove();
    if (!confirmed) return;
    try {
      await post("/alert/acknowledge-alert", { id: alert.id, comment: text || null });
    } catch (error) {
      $("#open-alerts").prepend(errorBox(error));
      return;
    }
    await loadAlerts();
  });
  document.body.append(dialog);
  dialog.showModal();
  comment.focus();
}

async function silence(name, hours) {
  const until = new Date(Date.now() + hours * 3600e3).toISOString();
  try {
    await post("/alert/silence-alert-rule", { name, until: hours > 0 ? until : new Date().toISOString() });
    await loadRules();
  } catch (error) {
    $("#rule-list").prepend(errorBox(error));
  }
}

// ------------------------------------------------------------------ rules

function describeParams(rule) {
  return Object.entries(rule.params)
    .map(([key, value]) => `${key} ${value}`)
    .join(", ");
}

function renderRules() {
  const now = Date.now();
  replace(
    $("#rule-list"),
    table(
      `${state.rules.length} rule${state.rules.length === 1 ? "" : "s"}`,
      [
        { label: "Name", render: (r) => clip(r.name) },
        { label: "Kind", render: (r) => r.kind.replaceAll("_", " ") },
        { label: "Watches", render: (r) => `${r.unique_identifier ?? `every ${r.type_name}`} · ${r.measure_name}` },
        { label: "Parameters", render: (r) => describeParams(r) },
        { label: "Severity", render: (r) => severityBadge(r.severity) },
        { label: "Channels", render: (r) => r.channels.join(", ") || "—" },
        {
          label: "Status",
          render: (r) =>
            !r.enabled
              ? el("span", { class: "badge", text: "disabled" })
              : r.silenced_until && new Date(r.silenced_until).getTime() > now
                ? el("span", { class: "badge stale", title: formatTime(r.silenced_until), text: `silenced until ${formatTime(r.silenced_until)}` })
                : el("span", { class: "badge fresh", text: "active" }),
        },
        {
          label: "Actions",
          render: (r) =>
            el(
              "div",
              { class: "actions", "data-editor-only": "" },
              el("button", { type: "button", class: "secondary small", text: "Edit", "aria-label": `Edit rule ${r.name}`, onclick: () => editRule(r) }),
              r.silenced_until && new Date(r.silenced_until).getTime() > now
                ? el("button", { type: "button", class: "secondary small", text: "Unsilence", "aria-label": `Unsilence rule ${r.name}`, onclick: () => silence(r.name, 0) })
                : el("button", { type: "button", class: "secondary small", text: "Silence", "aria-label": `Silence rule ${r.name}`, onclick: () => silence(r.name, silenceHours()) }),
              el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete rule ${r.name}`, onclick: () => deleteRule(r.name) }),
            ),
        },
      ],
      state.rules,
      { empty: "No rules yet. Write one in the editor below.", className: "rules" },
    ),
  );
}

async function loadRules() {
  try {
    state.rules = await withLoading($("#rule-list"), get("/alert/list-alert-rules"));
    renderRules();
  } catch (error) {
    replace($("#rule-list"), errorBox(error));
  }
}

async function deleteRule(name) {
  if (!(await confirmDialog(`Delete rule “${name}”? Its open alerts resolve; past ones stay listed.`))) return;
  try {
    await post("/alert/delete-alert-rule", { name });
    await Promise.all([loadRules(), loadAlerts()]);
  } catch (error) {
    $("#rule-list").prepend(errorBox(error));
  }
}

// ------------------------------------------------------------------ editor

function measuresOfScope() {
  const form = $("#rule-form");
  const typeName = form.scope.value === "type" ? form.type_name.value : state.sensors.find((s) => s.unique_identifier === form.unique_identifier.value)?.type_name;
  const type = state.types.find((t) => t.name === typeName);
  return type ? type.measures : [];
}

function refreshMeasures(selected) {
  const select = $("#rule-measure");
  const measures = measuresOfScope();
  const current = selected ?? select.value;
  fillSelect(
    select,
    measures.map((m) => ({ value: JSON.stringify([m.name, m.units]), label: measureLabel(m) })),
  );
  const match = measures.find((m) => JSON.stringify([m.name, m.units]) === current || m.name === current);
  if (match) select.value = JSON.stringify([match.name, match.units]);
}

function showKind() {
  const kind = $("#rule-kind").value;
  for (const set of $$("fieldset[data-kind]")) set.hidden = set.dataset.kind !== kind;
}

function showScope() {
  const byType = $("#rule-scope").value === "type";
  $("#type-field").hidden = !byType;
  $("#sensor-field").hidden = byType;
  refreshMeasures();
}

/** The rule the form describes, as the API takes it. */
function ruleBody(form) {
  const kind = form.kind.value;
  const params = {};
  for (const name of PARAMS[kind]) {
    const raw = form.elements[name].value.trim();
    if (raw !== "") params[name] = TEXT_PARAMS.has(name) ? raw : Number(raw);
  }
  const [measureName, units] = form.measure.value ? JSON.parse(form.measure.value) : ["", null];
  const body = {
    name: form.name.value.trim(),
    kind,
    measure_name: measureName,
    units,
    params,
    severity: form.severity.value,
    channels: form.channels.value.split(",").map((c) => c.trim()).filter(Boolean),
    enabled: form.enabled.checked,
  };
  if (form.scope.value === "type") body.type_name = form.type_name.value;
  else body.unique_identifier = form.unique_identifier.value;
  return body;
}

function editRule(rule) {
  const form = $("#rule-form");
  state.editing = rule.name;
  form.name.value = rule.name;
  form.kind.value = rule.kind;
  form.severity.value = rule.severity;
  form.scope.value = rule.type_name ? "type" : "sensor";
  if (rule.type_name) form.type_name.value = rule.type_name;
  else form.unique_identifier.value = rule.unique_identifier;
  showScope();
  refreshMeasures(JSON.stringify([rule.measure_name, rule.units]));
  for (const names of Object.values(PARAMS)) for (const name of names) form.elements[name].value = rule.params[name] ?? "";
  form.channels.value = rule.channels.join(", ");
  form.enabled.checked = rule.enabled;
  showKind();
  $("#editor-heading").textContent = `Rule editor: ${rule.name}`;
  $("#editor-heading").focus();
}

async function saveRule(form) {
  const body = ruleBody(form);
  if (state.editing === body.name) await post("/alert/update-alert-rule", body);
  else await post("/alert/insert-alert-rule", body);
  state.editing = body.name;
  await loadRules();
  return `Rule “${body.name}” saved.`;
}

const toNumber = (value) => (typeof value === "boolean" ? (value ? 1 : 0) : typeof value === "number" ? value : null);

async function backtest(form) {
  const body = ruleBody(form);
  const to = new Date();
  const from = new Date(to.getTime() - WEEK_MS);
  const result = await post("/alert/backtest-alert-rule", { ...body, name: body.name || "backtest", dt_from: from.toISOString(), dt_to: to.toISOString() });
  const region = $("#backtest");
  if (state.chart) state.chart.destroy();
  state.chart = null;
  // The plot shows one sensor: the chosen one, or the type's sensor that fired most.
  const counts = new Map();
  for (const i of result.intervals) counts.set(i.unique_identifier, (counts.get(i.unique_identifier) || 0) + 1);
  const sensor =
    body.unique_identifier ??
    ([...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] || state.sensors.find((s) => s.type_name === body.type_name)?.unique_identifier);
  const times = result.fired === 1 ? "once" : `${result.fired} times`;
  const summary = el("p", { class: "backtest-summary", text: `Would have fired ${times} in the last 7 days` + (body.type_name ? ` across ${result.series} sensors.` : ".") });
  replace(region, summary);
  if (!sensor) return "Backtest done.";
  const buckets = await post("/sensor/sensor-readings-aggregated", {
    unique_identifier: sensor,
    measure_name: body.measure_name,
    dt_from: from.toISOString(),
    dt_to: to.toISOString(),
    interval: "15min",
    aggregation: "mean",
  });
  const points = buckets.map((b) => [new Date(b.timestamp).getTime() / 1000, toNumber(b.value)]);
  const toSeconds = (value) => new Date(value).getTime() / 1000;
  const shade = result.intervals
    .filter((i) => i.unique_identifier === sensor)
    .map((i) => [toSeconds(i.start), i.end ? toSeconds(i.end) : to.getTime() / 1000]);
  const series = [{ label: `${sensor} (15-minute means)`, points }];
  const xs = points.length ? [points[0][0], points[points.length - 1][0]] : [from.getTime() / 1000, to.getTime() / 1000];
  for (const [name, color] of [["above", "#d1495b"], ["below", "#1f5fbf"]]) {
    if (body.kind === "threshold" && body.params[name] !== undefined) {
      series.push({ label: `fire ${name} ${body.params[name]}`, points: xs.map((x) => [x, body.params[name]]), color, dash: [6, 4], width: 1 });
    }
  }
  state.chart = timeSeriesChart(region, {
    title: `${sensor} · ${body.measure_name}`,
    yLabel: body.units || "",
    note: `Shaded: the ${shade.length} interval${shade.length === 1 ? "" : "s"} in which the rule would have fired on ${sensor}.`,
    series,
    shade,
  });
  return "Backtest done: nothing was saved.";
}

async function setUpEditor() {
  const [types, sensors] = await Promise.all([listSensorTypes(), listSensorsWithTypes()]);
  state.types = types;
  state.sensors = sensors;
  fillSelect($("#rule-sensor"), sensors.map((s) => ({ value: s.unique_identifier, label: `${s.unique_identifier} (${s.type_name})` })));
  fillSelect($("#rule-type"), types.map((t) => t.name));
  showScope();
  showKind();
  $("#rule-kind").addEventListener("change", showKind);
  $("#rule-scope").addEventListener("change", showScope);
  $("#rule-sensor").addEventListener("change", () => refreshMeasures());
  $("#rule-type").addEventListener("change", () => refreshMeasures());
  bindForm($("#rule-form"), (form, submitter) => (submitter && submitter.value === "backtest" ? backtest(form) : saveRule(form)));
}

async function main() {
  await startPage("alerts");
  $("#refresh-alerts").addEventListener("click", loadAlerts);
  $("#silence-form").addEventListener("submit", (event) => event.preventDefault());
  $("#evaluate-now").addEventListener("click", async () => {
    const status = $("#evaluate-status");
    try {
      const result = await post("/alert/evaluate-alerts");
      status.textContent = `Evaluated ${result.evaluated} series: ${result.transitions.length} transition${result.transitions.length === 1 ? "" : "s"}.`;
      await loadAlerts();
    } catch (error) {
      status.textContent = error.detail || String(error);
    }
  });
  await Promise.all([loadAlerts(), loadRules(), setUpEditor().catch((error) => $("#backtest").append(errorBox(error)))]);
}

main();
