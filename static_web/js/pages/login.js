// The sign-in page.

import { login, isSignedIn, logout } from "../api.js";
import { $, bindForm, queryParams } from "../dom.js";

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

function init() {
  const params = queryParams();
  const reason = params.get("reason");
  const notice = $("#login-notice");
  if (reason && REASONS[reason]) {
    notice.textContent = REASONS[reason];
    notice.hidden = false;
  }
  if (reason in REASONS) logout();
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
}

init();
