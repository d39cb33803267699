// Services: list, add (with an optional parameters schema), delete; a service's parameter
// sets (JSON checked as you type, the schema's errors from the API shown beside them),
// runs with a set or ad-hoc parameters, its schedules (next fire times, last run) and its
// run log, newest first.

import { get, post, getStatusUrl, ApiError } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, clip, withLoading, errorBox, bindForm, confirmDialog, queryParams, setQueryParams, fillSelect } from "../dom.js";
import { formatTime, timeZoneName, formatJson } from "../format.js";

const state = { services: [], current: null, sets: [], schedules: [] };

function renderServices() {
  replace(
    $("#service-list"),
    table(
      "Registered services",
      [
        { label: "Name", render: (s) => el("button", { type: "button", class: "link", "aria-label": `Open service ${s.name}`, onclick: () => openService(s.name) }, clip(s.name)) },
        { label: "Method", render: (s) => s.http_method },
        { label: "Schema", render: (s) => (s.parameters_schema ? el("span", { class: "badge", text: "schema" }) : "—") },
        { label: "URL", render: (s) => clip(s.url, "span", { class: "mono" }) },
        {
          label: "Actions",
          render: (s) =>
            el("button", { type: "button", class: "danger small", text: "Delete", "data-editor-only": "", "aria-label": `Delete service ${s.name}`, onclick: () => deleteService(s.name) }),
        },
      ],
      state.services,
      { empty: "No services yet. Add one." },
    ),
  );
}

async function loadServices() {
  const region = $("#service-list");
  try {
    state.services = await withLoading(region, get("/service/list-services"));
    renderServices();
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteService(name) {
  if (!(await confirmDialog(`Delete service “${name}” with its parameter sets and run log?`))) return;
  try {
    await post("/service/delete-service", { name });
    if (state.current === name) {
      state.current = null;
      $("#service-section").hidden = true;
      setQueryParams({});
    }
    await loadServices();
  } catch (error) {
    $("#service-list").prepend(errorBox(error));
  }
}

// ------------------------------------------------------------------ one service

/** Parse the parameters textarea: `{ok, value, message}`. Parameters must be a JSON object. */
export function checkParameters(text) {
  if (!text.trim()) return { ok: true, value: null, message: "No parameters: the service is called without a body." };
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { ok: false, value: null, message: "Parameters must be a JSON object, like {\"key\": 1}." };
    }
    return { ok: true, value, message: "Valid JSON object." };
  } catch (error) {
    return { ok: false, value: null, message: `Not valid JSON: ${error.message}` };
  }
}

function validateEditor() {
  const textarea = $("#parameters");
  const result = checkParameters(textarea.value);
  textarea.setAttribute("aria-invalid", String(!result.ok));
  const hint = $("#parameters-check");
  hint.textContent = result.message;
  hint.classList.toggle("error", !result.ok);
  return result;
}

function renderSets() {
  replace(
    $("#parameter-sets"),
    table(
      `Parameter sets of ${state.current}`,
      [
        { label: "Name", render: (p) => p.name },
        { label: "Parameters", render: (p) => el("pre", { text: formatJson(p.parameters) }) },
        {
          label: "Actions",
          render: (p) =>
            el(
              "div",
              { class: "actions" },
              el("button", { type: "button", class: "small", text: "Run", "data-editor-only": "", "aria-label": `Run with set ${p.name}`, onclick: () => runService(p.name, undefined) }),
              el("button", { type: "button", class: "secondary small", text: "Edit", "data-editor-only": "", "aria-label": `Edit set ${p.name}`, onclick: () => editSet(p) }),
              el("button", { type: "button", class: "danger small", text: "Delete", "data-editor-only": "", "aria-label": `Delete set ${p.name}`, onclick: () => deleteSet(p.name) }),
            ),
        },
      ],
      state.sets,
      { empty: "No parameter sets. Write parameters below and save them under a name." },
    ),
  );
}

function renderRuns(runs) {
  const sorted = runs.slice().sort((a, b) => new Date(b.timestamp) - new Date(a.timestamp));
  replace(
    $("#run-log"),
    table(
      `${sorted.length} run${sorted.length === 1 ? "" : "s"} (times in ${timeZoneName()})`,
      [
        { label: "When", render: (r) => el("time", { datetime: r.timestamp, text: formatTime(r.timestamp) }) },
        { label: "Parameter set", render: (r) => r.parameter_set_name ?? "ad hoc" },
        { label: "Parameters", render: (r) => el("pre", { text: formatJson(r.parameters) }) },
        {
          label: "Status",
          render: (r) =>
            r.status === "running"
              ? el("span", { class: "badge", text: "running" })
              : el("span", {
                  class: `badge ${r.status !== "failed" && r.response_status_code < 300 ? "fresh" : r.status !== "failed" && r.response_status_code < 400 ? "" : "bad"}`,
                  text: String(r.response_status_code),
                  title: r.detail || "",
                }),
        },
        { label: "Response", render: (r) => el("pre", { text: r.response_json === null || r.response_json === undefined ? "—" : formatJson(r.response_json) }) },
      ],
      sorted,
      { empty: "This service has not run yet.", className: "run-log" },
    ),
  );
}

// ------------------------------------------------------------------ schedules

function renderSchedules() {
  replace(
    $("#schedules"),
    table(
      `Schedules of ${state.current} (times in ${timeZoneName()})`,
      [
        { label: "Name", render: (s) => s.name },
        { label: "Parameter set", render: (s) => s.parameter_set_name ?? "none" },
        { label: "Cron (UTC)", render: (s) => el("code", { text: s.cron }) },
        { label: "Enabled", render: (s) => (s.enabled ? "yes" : "no") },
        {
          label: "Next fire times",
          render: (s) =>
            s.next_fire_times.length
              ? el("ul", { class: "plain next-fire-times" }, ...s.next_fire_times.map((t) => el("li", {}, el("time", { datetime: t, text: formatTime(t) }))))
              : "— (disabled)",
        },
        {
          label: "Last run",
          render: (s) =>
            s.last_run
              ? el(
                  "span",
                  { class: "last-run" },
                  el("time", { datetime: s.last_run.timestamp, text: formatTime(s.last_run.timestamp) }),
                  " ",
                  el("span", {
                    class: `badge ${s.last_run.status === "running" ? "" : s.last_run.status === "completed" && s.last_run.status_code < 400 ? "fresh" : "bad"}`,
                    text: s.last_run.status === "running" ? "running" : `${s.last_run.status} ${s.last_run.status_code}`,
                  }),
                  ` run #${s.last_run.run_id}`,
                )
              : "not yet",
        },
        {
          label: "Actions",
          render: (s) =>
            el(
              "div",
              { class: "actions", "data-editor-only": "" },
              el("button", { type: "button", class: "secondary small", text: "Edit", "aria-label": `Edit schedule ${s.name}`, onclick: () => editSchedule(s) }),
              el("button", {
                type: "button",
                class: "secondary small",
                text: s.enabled ? "Disable" : "Enable",
                "aria-label": `${s.enabled ? "Disable" : "Enable"} schedule ${s.name}`,
                onclick: () => toggleSchedule(s),
              }),
              el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete schedule ${s.name}`, onclick: () => deleteSchedule(s.name) }),
            ),
        },
      ],
      state.schedules,
      { empty: "Not scheduled. Schedule it below.", className: "schedules" },
    ),
  );
  fillSelect(
    $("#schedule-set"),
    [{ value: "", label: "(no parameters)" }, ...state.sets.map((p) => ({ value: p.name, label: p.name }))],
  );
}

function editSchedule(schedule) {
  const form = $("#schedule-form");
  form.elements.name.value = schedule.name;
  form.elements.parameter_set_name.value = schedule.parameter_set_name ?? "";
  form.elements.cron.value = schedule.cron;
  form.elements.enabled.checked = schedule.enabled;
  form.elements.cron.focus();
}

async function toggleSchedule(schedule) {
  try {
    await post("/service/update-schedule", { service_name: state.current, name: schedule.name, enabled: !schedule.enabled });
    await loadService();
  } catch (error) {
    $("#schedules").prepend(errorBox(error));
  }
}

async function deleteSchedule(name) {
  if (!(await confirmDialog(`Delete schedule “${name}”? The runs it started stay in the log.`))) return;
  try {
    await post("/service/delete-schedule", { service_name: state.current, name });
    await loadService();
  } catch (error) {
    $("#schedules").prepend(errorBox(error));
  }
}

async function loadService() {
  const name = state.current;
  const [sets, runs, schedules] = await Promise.all([
    post("/service/list-parameter-sets", { service_name: name }),
    post("/service/list-runs", { service_name: name }),
    get(`/service/list-schedules?service_name=${encodeURIComponent(name)}`),
  ]);
  state.sets = sets;
  state.schedules = schedules;
  renderSets();
  renderSchedules();
  renderRuns(runs);
}

/** Show the schema's errors (422 items under `parameters`) beside the parameters editor. */
function showSchemaErrors(error) {
  if (!(error instanceof ApiError) || error.status !== 422 || !Array.isArray(error.fieldErrors)) return;
  const messages = error.fieldErrors.filter((f) => f.field.startsWith("parameters")).map((f) => `${f.field}: ${f.message}`);
  if (!messages.length) return;
  const hint = $("#parameters-check");
  hint.textContent = `The service's schema refuses these parameters: ${messages.join("; ")}`;
  hint.classList.add("error");
  $("#parameters").setAttribute("aria-invalid", "true");
}

async function openService(name) {
  const service = state.services.find((s) => s.name === name);
  if (!service) return;
  state.current = name;
  setQueryParams({ service: name });
  const section = $("#service-section");
  section.hidden = false;
  $("#service-heading").textContent = `Service ${name}`;
  $("#service-summary").textContent = `${service.http_method} ${service.url}`;
  $("#schema-details").hidden = !service.parameters_schema;
  $("#schema-view").textContent = service.parameters_schema ? formatJson(service.parameters_schema) : "";
  $("#schedule-form").reset();
  $("#set-name").value = "";
  $("#parameters").value = "{}";
  validateEditor();
  $("#service-heading").focus();
  try {
    await withLoading($("#parameter-sets"), loadService());
  } catch (error) {
    replace($("#parameter-sets"), errorBox(error));
  }
}

function editSet(set) {
  $("#set-name").value = set.name;
  $("#parameters").value = formatJson(set.parameters);
  validateEditor();
  $("#parameters").focus();
}

async function deleteSet(name) {
  if (!(await confirmDialog(`Delete parameter set “${name}”? Its runs stay in the log.`))) return;
  try {
    await post("/service/delete-parameter-set", { service_name: state.current, name });
    await loadService();
  } catch (error) {
    $("#parameter-sets").prepend(errorBox(error));
  }
}

async function runService(setName, parameters) {
  const body = { service_name: state.current };
  if (setName) body.parameter_set_name = setName;
  if (parameters !== undefined && parameters !== null) body.parameters = parameters;
  const status = $("#parameters-form .form-status");
  status.className = "form-status";
  status.textContent = `Running ${state.current}…`;
  try {
    let reply = await withLoading($("#run-log"), post("/service/run-service", body), "Calling the service…");
    if (reply && Number.isInteger(reply.run_id)) {
      // Still running after the API's wait (202): follow the run until it ends.
      await loadService();
      status.textContent = `Still running (run #${reply.run_id}); the log shows it when it ends.`;
      reply = await followRun(reply.status_url);
    }
    await loadService();
    // The call went through, but the service may have answered with an error of its own.
    const answered = reply && typeof reply.status_code === "number" ? reply.status_code : 200;
    if (reply && reply.status === "failed") throw new Error(reply.detail);
    if (answered >= 400) {
      status.className = "form-status error";
      status.setAttribute("role", "alert");
      status.textContent = `The service answered ${answered}: the run failed (see the log).`;
      return;
    }
    status.removeAttribute("role");
    status.className = "form-status success";
    status.textContent = reply && reply.detail ? reply.detail : "Service called.";
  } catch (error) {
    await loadService().catch(() => {});
    status.className = "form-status error";
    status.setAttribute("role", "alert");
    status.textContent = error.detail || error.message;
  }
}

/** Poll a run's status URL (202 while it runs) until it has ended: the run. */
async function followRun(statusUrl) {
  let delay = 1000;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    const { status, body } = await getStatusUrl(statusUrl);
    if (status >= 400) throw new Error((body && body.detail) || `The run's status answered ${status}.`);
    if (body && body.status !== "running") return body;
    delay = Math.min(delay * 1.5, 5000);
  }
}

async function main() {
  await startPage("services");
  $("#parameters").addEventListener("input", validateEditor);

  bindForm($("#add-service-form"), async (form) => {
    const body = { name: form.elements.name.value.trim(), url: form.elements.url.value.trim(), http_method: form.elements.http_method.value };
    const schemaText = form.elements.parameters_schema.value.trim();
    if (schemaText) {
      try {
        body.parameters_schema = JSON.parse(schemaText);
      } catch (error) {
        throw new Error(`The parameters schema is not valid JSON: ${error.message}`);
      }
    }
    await post("/service/insert-service", body);
    form.reset();
    await loadServices();
    return `Service “${body.name}” added.`;
  });

  bindForm($("#parameters-form"), async (form, submitter) => {
    const check = validateEditor();
    if (!check.ok) throw new Error(check.message);
    const setName = form.elements.set_name.value.trim();
    if (submitter && submitter.value === "save") {
      if (!setName) throw new Error("Give the parameter set a name to save it.");
      if (check.value === null) throw new Error("A parameter set must be a JSON object.");
      const exists = state.sets.some((s) => s.name === setName);
      const body = { service_name: state.current, name: setName, parameters: check.value };
      let reply;
      try {
        reply = await post(exists ? "/service/edit-parameter-set" : "/service/insert-parameter-set", body);
      } catch (error) {
        showSchemaErrors(error);
        throw error;
      }
      await loadService();
      return reply && reply.detail ? reply.detail : "Saved.";
    }
    // Run: with the named set if it exists (the explicit parameters win), else ad hoc.
    const known = state.sets.some((s) => s.name === setName);
    await runService(known ? setName : null, check.value);
    return "";
  });

  bindForm($("#schedule-form"), async (form) => {
    const name = form.elements.name.value.trim();
    const body = {
      service_name: state.current,
      name,
      parameter_set_name: form.elements.parameter_set_name.value || null,
      cron: form.elements.cron.value.trim(),
      enabled: form.elements.enabled.checked,
    };
    const exists = state.schedules.some((s) => s.name === name);
    await post(exists ? "/service/update-schedule" : "/service/insert-schedule", body);
    await loadService();
    const saved = state.schedules.find((s) => s.name === name);
    const next = saved && saved.next_fire_times.length ? ` Next: ${formatTime(saved.next_fire_times[0])}.` : "";
    return `Schedule “${name}” ${exists ? "updated" : "created"}.${next}`;
  });

  await loadServices();
  const wanted = queryParams().get("service");
  if (wanted) openService(wanted);
}

main();
