// The groups page: the caller's groups, their members, and (for managers) adding and
// removing members and deleting the group. Everything goes through /api/v1/groups.
import { api, clear, confirmDialog, FEATURES, h, icon, ME, showError, toast, unavailable } from "./core.js";

const $ = (x) => document.getElementById(x);

function memberRow(group, user) {
  const isManager = group.managers.some((m) => m.id === user.id);
  const self = user.id === ME.id;
  const remove = (group.is_manager || self)
    ? h("button", { type: "button", class: "btn btn-ghost btn-small" }, self ? "Leave" : "Remove")
    : null;
  if (remove) {
    remove.addEventListener("click", async () => {
      const ok = await confirmDialog({
        title: self ? `Leave “${group.name}”?` : `Remove ${user.name}?`,
        message: self ? "You lose what is shared with this group." : `${user.name} loses what is shared with “${group.name}”.`,
        confirm: self ? "Leave" : "Remove",
        danger: true,
      });
      if (!ok) return;
      try {
        await api("DELETE", `groups/${group.id}/members/${user.id}`);
        toast(self ? `You left ${group.name}.` : `${user.name} removed.`, "success");
        load();
      } catch (err) {
        showError(err);
      }
    });
  }
  return h("li", { class: "share-row", dataset: { user: user.id } },
    h("span", { class: "share-who" }, `${user.name} (${user.email})`, isManager ? h("span", { class: "badge" }, "Manager") : null),
    remove);
}

function groupCard(group) {
  const body = [
    h("div", { class: "title-row" }, h("h2", {}, icon("users"), ` ${group.name}`),
      group.is_manager ? deleteButton(group) : null),
    h("ul", { class: "share-list", "aria-label": `Members of ${group.name}` }, group.members.map((u) => memberRow(group, u))),
  ];
  if (group.is_manager) body.push(addForm(group));
  return h("section", { class: "card pad group-card", dataset: { group: group.id, name: group.name } }, body);
}

function deleteButton(group) {
  const btn = h("button", { type: "button", class: "btn btn-danger btn-small" }, "Delete group");
  btn.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete “${group.name}”?`,
      message: "Everything shared with this group stops being shared with its members.",
      confirm: "Delete",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `groups/${group.id}`);
      toast(`${group.name} deleted.`, "success");
      load();
    } catch (err) {
      showError(err);
    }
  });
  return btn;
}

function addForm(group) {
  const id = `add-member-${group.id}`;
  const email = h("input", { id, type: "email", required: true, autocomplete: "off", placeholder: "name@example.com" });
  const manager = h("input", { id: `${id}-manager`, type: "checkbox" });
  const form = h("form", { class: "inline-form" },
    h("div", { class: "field grow" }, h("label", { for: id }, "Add a member by email"), email),
    h("div", { class: "field" }, h("label", { for: `${id}-manager` }, manager, " Manager")),
    h("div", { class: "field field-button" }, h("button", { type: "submit", class: "btn btn-primary" }, "Add")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", `groups/${group.id}/members`, { json: { email: email.value.trim(), manager: manager.checked } });
      toast(`${email.value.trim()} added.`, "success");
      load();
    } catch (err) {
      showError(err);
    }
  });
  return form;
}

async function load() {
  const box = $("content");
  try {
    const page = await api("GET", "groups", { query: { limit: 1000 } });
    if (!page.items.length) {
      clear(box, h("div", { class: "empty-state card" }, icon("users"), h("p", {}, "You are not in any group yet.")));
      return;
    }
    clear(box, page.items.map(groupCard));
  } catch (err) {
    showError(err, box);
  }
}

function setup() {
  if (!FEATURES.groups) {
    clear($("content"), unavailable("Groups"));
    $("new-group-form").hidden = true;
    return;
  }
  $("new-group-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("new-group-name");
    try {
      const group = await api("POST", "groups", { json: { name: name.value } });
      toast(`Group ${group.name} created.`, "success");
      name.value = "";
      load();
    } catch (err) {
      showError(err);
    }
  });
  load();
}

setup();
