// Services: list, add, delete; a service's parameter sets (JSON checked as you type), runs
// with a set or ad-hoc parameters, and its run log, newest first.

import { get, post, getStatusUrl } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, clip, withLoading, errorBox, bindForm, confirmDialog, queryParams, setQueryParams } from "../dom.js";
import { formatTime, timeZoneName, formatJson } from "../format.js";

const state = { services: [], current: null, sets: [] };

function renderServices() {
  replace(
    $("#service-list"),
    table(
      "Registered services",
      [
        { label: "Name", render: (s) => el("button", { type: "button", class: "link", "aria-label": `Open service ${s.name}`, onclick: () => openService(s.name) }, clip(s.name)) },
        { label: "Method", render: (s) => s.http_method },
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

async function loadService() {
  const name = state.current;
  const [sets, runs] = await Promise.all([
    post("/service/list-parameter-sets", { service_name: name }),
    post("/service/list-runs", { service_name: name }),
  ]);
  state.sets = sets;
  renderSets();
  renderRuns(runs);
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
      const reply = await post(exists ? "/service/edit-parameter-set" : "/service/insert-parameter-set", body);
      await loadService();
      return reply && reply.detail ? reply.detail : "Saved.";
    }
    // Run: with the named set if it exists (the explicit parameters win), else ad hoc.
    const known = state.sets.some((s) => s.name === setName);
    await runService(known ? setName : null, check.value);
    return "";
  });

  await loadServices();
  const wanted = queryParams().get("service");
  if (wanted) openService(wanted);
}

main();
