// Users: everyone changes their own password and sees their own account (the API lists
// only the caller to a non-admin); admins list, create and delete users.

import { get, post, logout } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, confirmDialog } from "../dom.js";

let me = { email: "", is_admin: false };

async function loadUsers() {
  const region = $("#user-list");
  try {
    const users = await withLoading(region, get("/user/list-users"));
    replace(
      region,
      table(
        `${users.length} user${users.length === 1 ? "" : "s"}`,
        [
          { label: "Email", render: (email) => (email === me.email ? el("span", {}, email, " ", el("span", { class: "badge", text: "you" })) : email) },
          {
            label: "Actions",
            render: (email) =>
              email === me.email || !me.is_admin
                ? ""
                : el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete user ${email}`, onclick: () => deleteUser(email) }),
          },
        ],
        users,
      ),
    );
  } catch (error) {
    replace(region, errorBox(error));
  }
}

async function deleteUser(email) {
  if (!(await confirmDialog(`Delete the user ${email}?`))) return;
  try {
    await post("/user/delete-user", { email });
    await loadUsers();
  } catch (error) {
    $("#user-list").prepend(errorBox(error));
  }
}

async function main() {
  me = await startPage("users");
  $("#me-email").textContent = me.email;

  bindForm($("#password-form"), async (form) => {
    const password = form.elements.password.value;
    if (password !== form.elements.confirm.value) throw new Error("The two passwords differ.");
    await post("/user/change-password", { email: me.email, password });
    form.reset();
    // Earlier tokens stop working after a password change: sign in again.
    logout();
    setTimeout(() => location.assign("/login.html?reason=password-changed"), 1500);
    return "Password changed. Please sign in again with the new password.";
  });

  if (!me.is_admin) {
    await loadUsers();
    return;
  }
  bindForm($("#create-user-form"), async (form) => {
    const body = { email: form.elements.email.value.trim(), password: form.elements.password.value, is_admin: form.elements.is_admin.checked };
    await post("/user/create-user", body);
    form.reset();
    await loadUsers();
    return `User ${body.email} created${body.is_admin ? " as an administrator" : ""}.`;
  });
  await loadUsers();
}

main();
