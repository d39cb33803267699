// The sign-in page.

import { login, isSignedIn, logout } from "../api.js";
import { $, bindForm, queryParams } from "../dom.js";
import { entraConfig, finishEntraSignIn, forgetEntraAccount, isEntraResponse, startEntraSignIn } from "../entra.js";

const REASONS = {
  "signed-out": "You have signed out.",
  expired: "Your session has ended. Please sign in again.",
  "password-changed": "Your password has changed. Please sign in with the new one.",
};

/** Only same-site paths are followed after signing in. */
function safeNext(next) {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/login.html")) return "/index.html";
  return next;
}

/** "Sign in with Microsoft", when the deployment offers it (GET /api/auth/config). */
async function offerEntra(params) {
  const error = $("#entra-error");
  const showError = (failure) => {
    error.textContent = failure.detail || failure.message || String(failure);
    error.hidden = false;
  };
  if (isEntraResponse()) {
    const notice = $("#login-notice");
    notice.textContent = "Finishing sign-in with Microsoft…";
    notice.hidden = false;
    try {
      const done = await finishEntraSignIn();
      if (done) {
        location.replace(safeNext(done.next));
        return;
      }
    } catch (failure) {
      showError(failure);
    } finally {
      notice.hidden = true;
    }
  }
  if (!(await entraConfig())) return;
  const button = $("#entra-button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.hidden = true;
    try {
      await startEntraSignIn(params.get("next"));
    } catch (failure) {
      showError(failure);
      button.disabled = false;
    }
  });
  $("#entra-sign-in").hidden = false;
}

function init() {
  const params = queryParams();
  const reason = params.get("reason");
  const notice = $("#login-notice");
  if (reason && REASONS[reason]) {
    notice.textContent = REASONS[reason];
    notice.hidden = false;
  }
  if (reason in REASONS) {
    logout();
    // Signed in with Microsoft in this tab: forget that account too (not Microsoft's session).
    if (Object.keys(sessionStorage).some((key) => key.startsWith("msal."))) forgetEntraAccount().catch(() => {});
  }
  else if (isSignedIn()) {
    location.replace(safeNext(params.get("next")));
    return;
  }

  const password = $("#password");
  const toggle = $("#toggle-password");
  toggle.addEventListener("click", () => {
    const show = password.type === "password";
    password.type = show ? "text" : "password";
    toggle.textContent = show ? "Hide" : "Show";
    toggle.setAttribute("aria-pressed", String(show));
  });

  const form = $("#login-form");
  bindForm(
    form,
    async () => {
      const email = $("#email").value.trim();
      if (!email || !password.value) throw new Error("Enter your email and password.");
      await login(email, password.value);
      location.assign(safeNext(params.get("next")));
      return "Signed in.";
    },
    { busyText: "Signing in…" },
  );
  $("#email").focus();
  offerEntra(params);
}

init();
