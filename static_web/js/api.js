// The one module that talks to the DTBase API: fetch, tokens, refresh and error shaping.
//
// Tokens live in sessionStorage, so they last for the browser tab and no longer. The
// access token is refreshed with the refresh token shortly before it expires (read from
// its `exp` claim) and again whenever the API answers 401 "Token has expired"; a page
// left open for hours keeps working as long as the refresh token chain holds.

const STORAGE_KEY = "dtbase.tokens";
const LOGIN_PAGE = "/login.html";

// ---------------------------------------------------------------- where the API is
// On Azure the API is the Function App's own origin, not the site's: the deployment writes
// its URL into /config.json (infra/package.py --api-url). The committed config.json says
// "/api", the same origin, which is how the local host serves both.

async function loadApiBase() {
  try {
    const reply = await fetch("/config.json", { headers: { Accept: "application/json" } });
    const config = reply.ok ? await reply.json() : {};
    return String(config.apiBase || "/api").replace(/\/+$/, "");
  } catch {
    return "/api";
  }
}

const API_BASE = await loadApiBase();
/** The API's reference pages (Swagger UI), linked from every page's header. */
export const API_DOCS_URL = `${API_BASE}/docs`;
/** The API's origin: bearer tokens are sent there and nowhere else. */
export const API_ORIGIN = new URL(API_BASE, location.href).origin;

/** The absolute URL of an API path such as "/auth/config". */
export function apiUrl(path) {
  return new URL(API_BASE + path, location.href).href;
}

/** An error from the API (or from failing to reach it), shaped for display. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the API could not be reached
   * @param {string} detail a human readable message (the API's `detail`)
   * @param {Array<{field: string, message: string}>} fieldErrors from a 422 reply
   */
  constructor(status, detail, fieldErrors = []) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.fieldErrors = fieldErrors;
  }

  /** True when the API (or its database) is down rather than the request being wrong. */
  get isUnavailable() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

// ---------------------------------------------------------------- activity events
// Pages show a global "loading" indicator and an "API unavailable" banner by listening
// to these events on `apiEvents`.

export const apiEvents = new EventTarget();
let inFlight = 0;

function setInFlight(delta) {
  inFlight += delta;
  apiEvents.dispatchEvent(new CustomEvent("activity", { detail: { inFlight } }));
}

function reportAvailability(available, message = "") {
  apiEvents.dispatchEvent(new CustomEvent("availability", { detail: { available, message } }));
}

// ---------------------------------------------------------------- token storage

/** @returns {{access_token: string, refresh_token: string} | null} */
export function getTokens() {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function storeTokens(tokens) {
  sessionStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }),
  );
  scheduleRefresh();
}

/**
 * Keep an access token obtained elsewhere: Microsoft Entra ID (js/entra.js), which also
 * renews it. `email` is the DTBase user it maps to.
 */
export function storeExternalToken(accessToken, email) {
  sessionStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ access_token: accessToken, refresh_token: null, entra: true, email }),
  );
  scheduleRefresh();
}

export function clearTokens() {
  sessionStorage.removeItem(STORAGE_KEY);
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
}

export function isSignedIn() {
  return getTokens() !== null;
}

/** Decode a JWT's claims without checking it (the API checks it). */
export function decodeClaims(token) {
  try {
    const part = token.split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

/** The signed-in user's email, read from the access token. */
export function currentEmail() {
  const tokens = getTokens();
  return tokens ? tokens.email || decodeClaims(tokens.access_token).sub || "" : "";
}

// ---------------------------------------------------------------- refreshing

let refreshTimer = null;
let refreshPromise = null;

/** Seconds before expiry at which the token is renewed: a quarter of its life, at most a minute. */
function refreshMargin(claims) {
  const lifetime = claims.exp && claims.iat ? claims.exp - claims.iat : 3600;
  return Math.min(60, Math.max(1, lifetime * 0.25));
}

function accessTokenNeedsRefresh() {
  const tokens = getTokens();
  if (!tokens) return false;
  const claims = decodeClaims(tokens.access_token);
  if (!claims.exp) return false;
  return Date.now() / 1000 >= claims.exp - refreshMargin(claims);
}

/** Arrange for the access token to be renewed shortly before it expires. */
export function scheduleRefresh() {
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = null;
  const tokens = getTokens();
  if (!tokens) return;
  const claims = decodeClaims(tokens.access_token);
  if (!claims.exp) return;
  const dueInMs = (claims.exp - refreshMargin(claims)) * 1000 - Date.now();
  refreshTimer = setTimeout(() => {
    refreshTokens().catch(() => {
      /* a failed background refresh is handled by the next request */
    });
  }, Math.max(0, dueInMs));
}

/** Swap the refresh token for a new pair. Concurrent callers share one request. */
export function refreshTokens() {
  if (refreshPromise) return refreshPromise;
  const tokens = getTokens();
  if (!tokens) return Promise.reject(new ApiError(401, "Not signed in"));
  refreshPromise = (async () => {
    if (tokens.entra) {
      // Signed in with Microsoft: MSAL renews the token, not /auth/refresh.
      const { renewEntraToken } = await import("./entra.js");
      try {
        await renewEntraToken();
      } catch (error) {
        clearTokens();
        sendToLogin("expired");
        throw error instanceof ApiError ? error : new ApiError(401, "Your Microsoft sign-in has ended.");
      }
      return;
    }
    const reply = await rawFetch("/auth/refresh", {
      method: "POST",
      headers: { Authorization: `Bearer ${tokens.refresh_token}` },
    });
    if (!reply.ok) {
      const error = await errorFromResponse(reply);
      if (reply.status === 401) {
        clearTokens();
        sendToLogin("expired");
      }
      throw error;
    }
    storeTokens(await reply.json());
  })().finally(() => {
    refreshPromise = null;
  });
  return refreshPromise;
}

/** Send the visitor to the sign-in page, remembering where they were. */
export function sendToLogin(reason = "") {
  if (location.pathname === LOGIN_PAGE) return;
  const next = location.pathname + location.search;
  const params = new URLSearchParams({ next });
  if (reason) params.set("reason", reason);
  location.replace(`${LOGIN_PAGE}?${params}`);
}

// ---------------------------------------------------------------- requests

async function rawFetch(path, init = {}) {
  setInFlight(+1);
  try {
    const reply = await fetch(path.startsWith("http") ? path : apiUrl(path), init);
    if (reply.status === 503 || reply.status === 502) {
      reportAvailability(false, `The API answered ${reply.status}: it or its database is unavailable.`);
    } else {
      reportAvailability(true);
    }
    return reply;
  } catch (error) {
    reportAvailability(false, "The API cannot be reached. Check your connection or try again later.");
    throw new ApiError(0, "The API cannot be reached. Check your connection or try again later.");
  } finally {
    setInFlight(-1);
  }
}

/** Turn a non-2xx reply into an ApiError carrying the API's `detail`. */
export async function errorFromResponse(reply) {
  let body = null;
  try {
    body = await reply.json();
  } catch {
    body = null;
  }
  const detail = body && "detail" in body ? body.detail : null;
  if (Array.isArray(detail)) {
    const fieldErrors = detail.map((item) => ({
      field: Array.isArray(item.loc) ? item.loc.filter((part) => part !== "body").join(".") : "",
      message: item.msg || String(item),
    }));
    const text = fieldErrors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ");
    return new ApiError(reply.status, text || "The request was not valid.", fieldErrors);
  }
  if (typeof detail === "string" && detail) return new ApiError(reply.status, detail);
  return new ApiError(reply.status, `The API answered ${reply.status} ${reply.statusText}`.trim());
}

/**
 * Call the API with the access token, refreshing it before expiry and once on a 401.
 * @param {string} path e.g. "/sensor/list-sensors"
 * @param {{method?: string, body?: any, accept?: string, auth?: boolean}} options
 * @returns {Promise<Response>} a 2xx reply
 */
export async function request(path, { method = "GET", body, text, accept = "application/json", auth = true } = {}) {
  const attempt = async () => {
    const headers = { Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (text !== undefined) headers["Content-Type"] = "text/csv";
    if (auth) {
      const tokens = getTokens();
      if (!tokens) {
        sendToLogin();
        throw new ApiError(401, "Not signed in");
      }
      headers.Authorization = `Bearer ${tokens.access_token}`;
    }
    return rawFetch(path, { method, headers, body: text !== undefined ? text : body === undefined ? undefined : JSON.stringify(body) });
  };

  if (auth && accessTokenNeedsRefresh()) {
    await refreshTokens();
  }
  let reply = await attempt();
  if (auth && reply.status === 401) {
    const error = await errorFromResponse(reply.clone());
    if (error.detail === "Not authenticated" || error.detail === "Not signed in") {
      clearTokens();
      sendToLogin();
      throw error;
    }
    // Expired, or invalidated (password changed elsewhere): try the refresh token once.
    await refreshTokens();
    reply = await attempt();
    if (reply.status === 401) {
      const again = await errorFromResponse(reply);
      clearTokens();
      sendToLogin("expired");
      throw again;
    }
  }
  if (!reply.ok) throw await errorFromResponse(reply);
  return reply;
}

/** GET a JSON listing. */
export async function get(path) {
  return (await request(path)).json();
}

/** POST a JSON body and return the JSON reply. */
export async function post(path, body = {}) {
  const reply = await request(path, { method: "POST", body });
  const text = await reply.text();
  return text ? JSON.parse(text) : null;
}

/** POST CSV text (`text/csv`) with query parameters; return the JSON reply. */
export async function postCsv(path, text, params = {}) {
  const query = new URLSearchParams(params).toString();
  const reply = await request(query ? `${path}?${query}` : path, { method: "POST", text });
  return reply.json();
}

/** POST a JSON body and return the reply as a Blob (for downloads). */
export async function postForBlob(path, body, accept = "text/csv") {
  const reply = await request(path, { method: "POST", body, accept });
  return reply.blob();
}

/** Sign in; stores the tokens for this tab. Throws ApiError with the API's detail. */
export async function login(email, password) {
  const reply = await rawFetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!reply.ok) throw await errorFromResponse(reply);
  storeTokens(await reply.json());
}

export function logout() {
  clearTokens();
  sessionStorage.removeItem("dtbase.me");
}

/** The signed-in user, `{email, is_admin}`, cached for the tab. */
export async function me() {
  const cached = sessionStorage.getItem("dtbase.me");
  if (cached) {
    const parsed = JSON.parse(cached);
    if (parsed.email === currentEmail()) return parsed;
  }
  const user = await get("/user/me");
  sessionStorage.setItem("dtbase.me", JSON.stringify(user));
  return user;
}

/**
 * GET a status URL handed out by the API (such as a Durable Functions
 * `statusQueryGetUri`) and return `{status, body}` whatever the status code. The access
 * token is sent only to the API's origin.
 */
export async function getStatusUrl(url) {
  const target = new URL(url, API_ORIGIN);
  const headers = { Accept: "application/json" };
  if (target.origin === API_ORIGIN) {
    if (accessTokenNeedsRefresh()) await refreshTokens();
    const tokens = getTokens();
    if (tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
  }
  const reply = await rawFetch(target.href, { headers });
  const text = await reply.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: reply.status, body };
}

/** The API's OpenAPI document (no auth), or null when it cannot be read. */
export async function openApi() {
  try {
    const reply = await rawFetch("/openapi.json", { headers: { Accept: "application/json" } });
    return reply.ok ? await reply.json() : null;
  } catch {
    return null;
  }
}

/** `GET /health` without auth: `{ok, detail}`. */
export async function health() {
  try {
    const reply = await rawFetch("/health", { headers: { Accept: "application/json" } });
    const body = await reply.json().catch(() => ({}));
    return { ok: reply.ok, detail: body.detail || body.status || "" };
  } catch (error) {
    return { ok: false, detail: error.detail || String(error) };
  }
}

// Keep refreshing on schedule for pages that were reloaded with tokens already stored,
// and re-arm the timer when a tab that slept (timers throttled) becomes visible again.
scheduleRefresh();
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible" || !getTokens()) return;
  if (accessTokenNeedsRefresh()) refreshTokens().catch(() => {});
  else scheduleRefresh();
});
