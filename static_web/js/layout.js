// The page frame shared by every signed-in page: sign-in guard, navigation bar, the
// signed-in user, admin-only controls, a global loading indicator and an
// "API unavailable" banner.

import { apiEvents, isSignedIn, logout, me, sendToLogin, currentEmail, ApiError, API_DOCS_URL } from "./api.js";
import { el, $, $$ } from "./dom.js";

// The navigation: a few links, and groups of related pages behind a menu button each, so
// that the header stays one line at 1280 px however many pages there are. `admin` items
// are shown to admins only (the API refuses everyone else anyway).
export const NAV_ITEMS = [
  { page: "dashboard", href: "/index.html", label: "Dashboard" },
  { page: "assets", href: "/assets.html", label: "Assets" },
  {
    label: "Data",
    items: [
      { page: "sensors", href: "/sensors.html", label: "Sensors" },
      { page: "readings", href: "/readings.html", label: "Readings" },
      { page: "plots", href: "/plots.html", label: "Plots" },
      { page: "locations", href: "/locations.html", label: "Locations" },
      { page: "import", href: "/import.html", label: "Import", editor: true },
    ],
  },
  {
    label: "Models",
    items: [
      { page: "models", href: "/models.html", label: "Models" },
      { page: "forecasts", href: "/forecasts.html", label: "Forecasts" },
      { page: "services", href: "/services.html", label: "Services" },
    ],
  },
  {
    label: "Alerts",
    items: [
      { page: "alerts", href: "/alerts.html", label: "Alerts" },
      { page: "channels", href: "/channels.html", label: "Channels" },
    ],
  },
  {
    label: "Admin",
    items: [
      { page: "users", href: "/users.html", label: "Users" },
      { page: "apikeys", href: "/apikeys.html", label: "Keys", title: "API keys", admin: true },
      { page: "audit", href: "/audit.html", label: "Audit", title: "Audit log", admin: true },
    ],
  },
];

function navLink(item, currentPage) {
  return el(
    "li",
    item.admin ? { "data-admin-only": "", hidden: true } : item.editor ? { "data-editor-only": "" } : {},
    el("a", {
      href: item.href,
      text: item.label,
      title: item.title,
      "aria-label": item.title,
      "aria-current": item.page === currentPage ? "page" : undefined,
    }),
  );
}

/** A group: a button that shows or hides its links (a disclosure, not an ARIA menu). */
function navGroup(group, index, currentPage, closeOthers) {
  const listId = `nav-group-${index}`;
  const current = group.items.some((item) => item.page === currentPage);
  // The caret is decoration: the button's name is the group's label alone.
  const button = el(
    "button",
    {
      type: "button",
      class: current ? "nav-group-button current" : "nav-group-button",
      "aria-expanded": "false",
      "aria-controls": listId,
    },
    group.label,
    el("span", { class: "caret", "aria-hidden": "true", text: "\u25BE" }),
  );
  const list = el("ul", { id: listId, class: "nav-group-list", hidden: true }, group.items.map((item) => navLink(item, currentPage)));
  const setOpen = (open) => {
    button.setAttribute("aria-expanded", String(open));
    list.hidden = !open;
  };
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    closeOthers();
    setOpen(open);
  });
  const item = el("li", { class: "nav-group" }, button, list);
  item.closeGroup = () => setOpen(false);
  return item;
}

function buildHeader(currentPage) {
  const menuId = "site-nav-list";
  const toggle = el("button", {
    type: "button",
    class: "nav-toggle",
    "aria-expanded": "false",
    "aria-controls": menuId,
    text: "Menu",
  });
  const groups = [];
  const closeAll = () => groups.forEach((group) => group.closeGroup());
  const list = el(
    "ul",
    { id: menuId, class: "nav-list" },
    NAV_ITEMS.map((item, index) => {
      if (!item.items) return navLink(item, currentPage);
      const group = navGroup(item, index, currentPage, closeAll);
      groups.push(group);
      return group;
    }),
  );
  // A group closes on Escape and on a click anywhere outside it.
  document.addEventListener("click", (event) => {
    if (!groups.some((group) => group.contains(event.target))) closeAll();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = groups.find((group) => group.querySelector("[aria-expanded=true]"));
    if (!open) return;
    closeAll();
    open.querySelector("button").focus();
  });
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    list.classList.toggle("open", open);
  });
  const userBox = el(
    "div",
    { class: "user-box" },
    el("a", { class: "docs-link", href: API_DOCS_URL, text: "API docs" }),
    // A long address is cut with an ellipsis (CSS); the title shows all of it.
    el("span", { class: "user-email", id: "signed-in-email", text: currentEmail(), title: currentEmail() }),
    el("span", { class: "badge admin-badge", "data-admin-only": "", hidden: true, text: "admin" }),
    el("span", { class: "badge viewer-badge", "data-viewer-only": "", hidden: true, text: "read only", title: "Your role is viewer: you can read everything and change nothing" }),
    el("button", { type: "button", id: "sign-out", class: "secondary small", text: "Sign out" }),
  );
  const activity = el("span", { id: "activity", class: "activity", role: "status", "aria-live": "polite" });
  return [
    el(
      "div",
      { class: "bar" },
      el("a", { class: "brand", href: "/index.html" }, el("img", { src: "/favicon.svg", alt: "", width: 24, height: 24 }), "DTBase"),
      toggle,
      el("nav", { "aria-label": "Main" }, list),
      activity,
      userBox,
    ),
    el("div", { id: "api-banner", class: "banner error", role: "alert", hidden: true }),
  ];
}

function watchApiActivity() {
  const activity = $("#activity");
  let hideTimer = null;
  apiEvents.addEventListener("activity", (event) => {
    const busy = event.detail.inFlight > 0;
    clearTimeout(hideTimer);
    if (busy) {
      activity.textContent = "Loading…";
      activity.classList.add("busy");
      document.body.setAttribute("aria-busy", "true");
    } else {
      hideTimer = setTimeout(() => {
        activity.textContent = "";
        activity.classList.remove("busy");
        document.body.removeAttribute("aria-busy");
      }, 150);
    }
  });
  const banner = $("#api-banner");
  apiEvents.addEventListener("availability", (event) => {
    if (event.detail.available) {
      banner.hidden = true;
      banner.textContent = "";
    } else {
      banner.hidden = false;
      banner.textContent = `${event.detail.message} This page will work again once the API is back; nothing you entered is lost.`;
    }
  });
}

/**
 * Show what the user's role may use (the API enforces roles anyway): controls marked
 * `data-admin-only` (hidden attribute) and `data-editor-only` (hidden by CSS unless the
 * body has `can-edit`, so that buttons drawn later are covered too).
 * @param {"viewer"|"editor"|"admin"|null} role null while unknown: nothing that writes shows
 */
export function applyRole(role) {
  const isAdmin = role === "admin";
  document.body.classList.toggle("is-admin", isAdmin);
  document.body.classList.toggle("can-edit", isAdmin || role === "editor");
  for (const node of $$("[data-admin-only]")) node.hidden = !isAdmin;
  for (const node of $$("[data-non-admin-only]")) node.hidden = isAdmin;
  for (const node of $$("[data-viewer-only]")) node.hidden = role !== "viewer";
}

/** A user's role; a reply cached by an older version has only `is_admin`. */
function roleOf(user) {
  return user.role ?? (user.is_admin ? "admin" : "editor");
}

/**
 * Start a signed-in page. Redirects a signed-out visitor to the sign-in page.
 * @returns {Promise<{email: string, is_admin: boolean, role: string}>} the user (an editor if unknown)
 */
export async function startPage(pageName) {
  if (!isSignedIn()) {
    sendToLogin();
    // Never resolves: the browser is leaving.
    return new Promise(() => {});
  }
  const header = $("#site-header");
  header.replaceChildren(...buildHeader(pageName));
  watchApiActivity();
  $("#sign-out").addEventListener("click", () => {
    logout();
    location.assign("/login.html?reason=signed-out");
  });
  applyRole(null);
  // Unknown (the API unreachable): the controls of an editor, so that forms still explain
  // what went wrong; the API decides anyway.
  let user = { email: currentEmail(), is_admin: false, role: "editor" };
  try {
    user = await me();
  } catch (error) {
    if (!(error instanceof ApiError) || !error.isUnavailable) console.warn("Could not read the signed-in user", error);
  }
  $("#signed-in-email").textContent = user.email;
  $("#signed-in-email").title = user.email;
  user.role = roleOf(user);
  applyRole(user.role);
  document.body.classList.remove("auth-pending");
  return user;
}
