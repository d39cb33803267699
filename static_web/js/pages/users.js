// Users: everyone changes their own password and sees their own account (the API lists
// only the caller to a non-admin); admins list users with their roles, create and delete
// users and change their roles.

import { get, post, logout } from "../api.js";
import { startPage } from "../layout.js";
import { el, $, replace, table, withLoading, errorBox, bindForm, confirmDialog } from "../dom.js";

let me = { email: "", is_admin: false, role: null };

const ROLES = [
  ["viewer", "Viewer (reads only)"],
  ["editor", "Editor (reads and writes data)"],
  ["admin", "Administrator (also manages users)"],
];

/** An admin's select of another user's role; a change is saved at once. */
function roleSelect(user) {
  const select = el("select", { "aria-label": `Role of ${user.email}` }, ...ROLES.map(([value, label]) => el("option", { value, text: label, selected: value === user.role })));
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await post("/user/update-user-role", { email: user.email, role: select.value });
      user.role = select.value;
    } catch (error) {
      select.value = user.role;
      $("#user-list").prepend(errorBox(error));
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

async function loadUsers() {
  const region = $("#user-list");
  try {
    // An admin gets every user with their role; anyone else only their own email.
    const users = me.is_admin
      ? await withLoading(region, get("/user/list-user-roles"))
      : (await withLoading(region, get("/user/list-users"))).map((email) => ({ email, role: me.role }));
    const isMe = (u) => u.email === me.email;
    replace(
      region,
      table(
        `${users.length} user${users.length === 1 ? "" : "s"}`,
        [
          { label: "Email", render: (u) => (isMe(u) ? el("span", {}, u.email, " ", el("span", { class: "badge", text: "you" })) : u.email) },
          { label: "Role", render: (u) => (isMe(u) || !me.is_admin ? u.role ?? "" : roleSelect(u)) },
          {
            label: "Actions",
            render: (u) =>
              isMe(u) || !me.is_admin
                ? ""
                : el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete user ${u.email}`, onclick: () => deleteUser(u.email) }),
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
    const body = { email: form.elements.email.value.trim(), password: form.elements.password.value, role: form.elements.role.value };
    await post("/user/create-user", body);
    form.reset();
    await loadUsers();
    const as = { admin: " as an administrator", viewer: " as a viewer (reads only)" }[body.role] ?? "";
    return `User ${body.email} created${as}.`;
  });
  await loadUsers();
}

main();
