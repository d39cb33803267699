// Sign-in with Microsoft Entra ID: MSAL.js, authorization code flow with PKCE, by redirect.
//
// Offered only when the API's `GET /auth/config` names an Entra ID app registration for the web
// app. MSAL.js (vendor/msal, 300 kB) is loaded only when it is needed: to start a sign-in,
// to finish one when Microsoft redirects back to the login page, and to renew the access
// token. The token is kept by api.js like a built-in one (sessionStorage, for the tab) and
// sent as the Bearer token; api.js asks `renewEntraToken` instead of /auth/refresh to
// renew it, and MSAL does that silently with its refresh token.

import { ApiError, apiUrl, currentEmail, errorFromResponse, storeExternalToken } from "./api.js";

const MSAL_SCRIPT = "/vendor/msal/msal-browser.min.js";
const LOGIN_PAGE = "/login.html";

let configPromise = null;
let appPromise = null;

/** The deployment's Entra ID settings `{client_id, authority, scopes}`, or null. */
export function entraConfig() {
  configPromise ??= fetch(apiUrl("/auth/config"), { headers: { Accept: "application/json" } })
    .then((reply) => (reply.ok ? reply.json() : { entra: null }))
    .then((body) => body.entra || null)
    .catch(() => null);
  return configPromise;
}

function loadMsal() {
  if (window.msal) return Promise.resolve(window.msal);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = MSAL_SCRIPT;
    script.onload = () => resolve(window.msal);
    script.onerror = () => reject(new Error("The Microsoft sign-in library could not be loaded."));
    document.head.append(script);
  });
}

async function msalApp() {
  appPromise ??= (async () => {
    const config = await entraConfig();
    if (!config) throw new Error("Sign-in with Microsoft is not configured for this site.");
    const msal = await loadMsal();
    const app = new msal.PublicClientApplication({
      auth: {
        clientId: config.client_id,
        authority: config.authority,
        // Trust the configured authority as it is (no cloud discovery round trip).
        knownAuthorities: [new URL(config.authority).host],
        redirectUri: location.origin + LOGIN_PAGE,
        postLogoutRedirectUri: location.origin + LOGIN_PAGE,
      },
      cache: { cacheLocation: "sessionStorage" },
    });
    await app.initialize();
    return { app, config, msal };
  })();
  appPromise.catch(() => {
    appPromise = null;
  });
  return appPromise;
}

/** Go to Microsoft's sign-in page; it comes back to the login page. */
export async function startEntraSignIn(next) {
  const { app, config } = await msalApp();
  await app.loginRedirect({ scopes: config.scopes, state: next || "", prompt: "select_account" });
}

/**
 * True when a sign-in with Microsoft may be finishing on this page: Microsoft redirected
 * here with a response, or MSAL (which moves a response to the page that started the
 * sign-in) left its state in this tab.
 */
export function isEntraResponse() {
  const response = new URLSearchParams(location.hash.slice(1) || location.search);
  if (response.has("state") && (response.has("code") || response.has("error"))) return true;
  return Object.keys(sessionStorage).some((key) => key.startsWith("msal."));
}

/**
 * Finish a sign-in on the page Microsoft redirected to: check that the API knows this
 * person, keep the token, and return where to go next (the `next` given to the start).
 * Throws ApiError with the API's detail (e.g. no DTBase user for this identity).
 */
export async function finishEntraSignIn() {
  const { app } = await msalApp();
  const result = await app.handleRedirectPromise();
  if (!result || !result.accessToken) return null;
  app.setActiveAccount(result.account);
  const reply = await fetch(apiUrl("/user/me"), {
    headers: { Accept: "application/json", Authorization: `Bearer ${result.accessToken}` },
  });
  if (!reply.ok) {
    await app.clearCache();
    throw await errorFromResponse(reply);
  }
  const user = await reply.json();
  storeExternalToken(result.accessToken, user.email);
  sessionStorage.setItem("dtbase.me", JSON.stringify(user));
  return { next: result.state || "" };
}

/** A fresh access token from MSAL's cache or refresh token, stored for api.js. */
export async function renewEntraToken() {
  const { app, config } = await msalApp();
  const account = app.getActiveAccount() || app.getAllAccounts()[0];
  if (!account) throw new ApiError(401, "Your Microsoft sign-in has ended.");
  const result = await app.acquireTokenSilent({ scopes: config.scopes, account });
  storeExternalToken(result.accessToken, currentEmail());
}

/** Forget the Microsoft account in this tab (signing out of DTBase, not of Microsoft). */
export async function forgetEntraAccount() {
  if (!(await entraConfig())) return;
  const { app } = await msalApp();
  await app.clearCache();
}
