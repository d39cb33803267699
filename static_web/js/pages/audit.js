// Audit log (admins): every write through the API, newest first, filtered by actor, route
// or area, outcome and time; a page at a time, the next page before the last id shown.

import { get, post, openApi } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, fillSelect, queryParams, setQueryParams } from "../dom.js";
import { formatTime, localInputToIso, toLocalInput } from "../format.js";

const PAGE_SIZE = 50;
const ACTOR_KINDS = { user: "user", api_key: "API key", service: "service" };
// `pages`: the `before_id` of each page shown so far (null for the newest), for "Newer".
const state = { filters: {}, pages: [null] };

function status(event) {
  const kind = event.outcome === "success" ? "fresh" : "bad";
  return el("span", { class: `badge ${kind}`, title: event.outcome, text: String(event.status) });
}

function actor(event) {
  return el("span", {}, event.actor, " ", el("span", { class: "badge", text: ACTOR_KINDS[event.actor_kind] || event.actor_kind }));
}

function readFilters(form) {
  const filters = {};
  for (const name of ["actor", "action", "outcome"]) {
    const value = form.elements[name].value.trim();
    if (value) filters[name] = value;
  }
  for (const name of ["dt_from", "dt_to"]) {
    if (form.elements[name].value) filters[name] = localInputToIso(form.elements[name].value);
  }
  return filters;
}

async function loadPage() {
  const region = $("#event-list");
  const beforeId = state.pages[state.pages.length - 1];
  const body = { ...state.filters, limit: PAGE_SIZE };
  if (beforeId !== null) body.before_id = beforeId;
  try {
    const events = await withLoading(region, post("/audit/list-events", body));
    const newer = el("button", { type: "button", class: "secondary small", id: "newer-page", text: "Newer", disabled: state.pages.length === 1 });
    const older = el("button", { type: "button", class: "secondary small", id: "older-page", text: "Older", disabled: events.length < PAGE_SIZE });
    newer.addEventListener("click", async () => {
      state.pages.pop();
      await loadPage();
      $("#newer-page").focus();
    });
    older.addEventListener("click", async () => {
      state.pages.push(events[events.length - 1].id);
      await loadPage();
      $("#older-page").focus();
    });
    const where = `Page ${state.pages.length}`;
    replace(
      region,
      el("div", { class: "pager" }, newer, older, el("span", { id: "page-info", role: "status", text: where })),
      table(
        `${events.length} event${events.length === 1 ? "" : "s"}, newest first`,
        [
          { label: "Time", render: (e) => formatTime(e.at) },
          { label: "Actor", render: actor },
          { label: "Route", render: (e) => el("code", { text: e.route }) },
          { label: "Target", render: (e) => e.target || "—", wrap: true },
          { label: "Status", render: status },
        ],
        events,
        { empty: "No events match these filters." },
      ),
    );
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function show(filters) {
  state.filters = filters;
  state.pages = [null];
  setQueryParams(filters);
  await loadPage();
}

/** Suggestions: every user and key for the actor, every audited route and area for the action. */
async function fillSuggestions() {
  const [emails, keys, doc] = await Promise.all([
    get("/user/list-users").catch(() => []),
    get("/apikey/list-api-keys").catch(() => []),
    openApi(),
  ]);
  const actors = [...emails, ...keys.map((k) => k.name)];
  fillSelect($("#a-actors"), [...new Set(actors)]);
  const routes = Object.entries(doc?.paths || {})
    .filter(([, ops]) => Object.values(ops).some((op) => op["x-dtbase-audited"]))
    .map(([path]) => path.replace(/^\//, ""))
    .sort();
  const areas = [...new Set(routes.map((r) => r.split("/")[0]))];
  fillSelect($("#a-actions"), [...areas, ...routes]);
}

async function main() {
  const user = await startPage("audit");
  if (!user.is_admin) return;
  const form = $("#audit-filter");
  const params = queryParams();
  for (const name of ["actor", "action", "outcome"]) form.elements[name].value = params.get(name) || "";
  for (const name of ["dt_from", "dt_to"]) {
    if (params.get(name)) form.elements[name].value = toLocalInput(new Date(params.get(name)));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      show(readFilters(form));
    } catch (error) {
      replace($("#event-list"), errorBox(error));
    }
  });
  form.addEventListener("reset", () => setTimeout(() => show({}), 0));
  fillSuggestions();
  await show(readFilters(form));
}

main();
