// The share dialog: people by email, links with expiry and password, who has access and why.
import {
  api, apiAll, clear, folderName, formatDate, h, lookupNames, ME, openDialog, permissionLabel,
  showError, toast, userName, FEATURES,
} from "./core.js";

const LEVELS = ["VIEW", "COMMENT", "EDIT"];

function levelSelect(id, value = "VIEW", label) {
  const attrs = { id, class: "select" };
  if (label) attrs["aria-label"] = label;
  const sel = h("select", attrs, LEVELS.map((l) => h("option", { value: l }, permissionLabel(l))));
  sel.value = value;
  return sel;
}

export function linkUrl(token) {
  return `${location.origin}/l/${encodeURIComponent(token)}`;
}

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    input.select();
    document.execCommand("copy");
  }
  toast("Link copied to the clipboard.", "success");
}

function endOfDay(dateValue) {
  // <input type=date> gives a local calendar day: the link works until that day ends.
  const [y, m, d] = dateValue.split("-").map(Number);
  return new Date(y, m - 1, d, 23, 59, 59).toISOString();
}

function whyText(via) {
  const parts = via.map((v) => {
    if (v.kind === "owner") return "owns it";
    if (v.kind === "direct") return `shared directly (${permissionLabel(v.permission).toLowerCase()})`;
    if (v.kind === "folder") {
      const name = folderName(v.folder_id);
      return `through the folder “${name || `#${v.folder_id}`}” (${permissionLabel(v.permission).toLowerCase()})`;
    }
    if (v.kind === "group") {
      const group = `the group “${v.group_name || `#${v.group_id}`}”`;
      const where = v.folder_id ? ` on the folder “${folderName(v.folder_id) || `#${v.folder_id}`}”` : "";
      return `through ${group}${where} (${permissionLabel(v.permission).toLowerCase()})`;
    }
    if (v.kind === "link") return "through a link";
    return v.kind;
  });
  return parts.join("; ");
}

/** Open the dialog for a document or a folder the caller owns. */
export function openShareDialog({ kind, id, name, onChange }) {
  const target = kind === "folder" ? { folder_id: id } : { document_id: id };
  const listPath = kind === "folder" ? `folders/${id}/shares` : `documents/${id}/shares`;
  const msg = h("div", { class: "dialog-message", hidden: true });

  // People ---------------------------------------------------------------------------------
  const email = h("input", { id: "share-email", type: "email", required: true, autocomplete: "off", placeholder: "name@example.com" });
  const level = levelSelect("share-level");
  const peopleForm = h("form", { class: "inline-form", id: "share-people-form" },
    h("div", { class: "field grow" }, h("label", { for: "share-email" }, "Email address"), email),
    h("div", { class: "field" }, h("label", { for: "share-level" }, "Permission"), level),
    h("div", { class: "field field-button" }, h("button", { type: "submit", class: "btn btn-primary" }, "Share")));
  const people = h("ul", { class: "share-list", id: "share-people" });
  // Groups the caller is in (shown once they are loaded, if there are any).
  const groupSelect = h("select", { id: "share-group", class: "select" });
  const groupLevel = levelSelect("share-group-level");
  const groupForm = h("form", { class: "inline-form", id: "share-group-form", hidden: true },
    h("div", { class: "field grow" }, h("label", { for: "share-group" }, "Group"), groupSelect),
    h("div", { class: "field" }, h("label", { for: "share-group-level" }, "Group permission"), groupLevel),
    h("div", { class: "field field-button" }, h("button", { type: "submit", class: "btn btn-primary" }, "Share with group")));
  if (FEATURES.groups) {
    api("GET", "groups", { query: { limit: 1000 } }).then((page) => {
      clear(groupSelect, page.items.map((g) => h("option", { value: String(g.id) }, g.name)));
      groupForm.hidden = page.items.length === 0;
    }).catch(() => {});
  }

  // Links ----------------------------------------------------------------------------------
  const linkLevel = levelSelect("link-level");
  const expires = h("input", { id: "link-expires", type: "date", min: new Date().toISOString().slice(0, 10) });
  const password = h("input", { id: "link-password", type: "password", autocomplete: "new-password" });
  const linkForm = h("form", { class: "inline-form", id: "share-link-form" },
    h("div", { class: "field" }, h("label", { for: "link-level" }, "Link permission"), linkLevel),
    h("div", { class: "field" }, h("label", { for: "link-expires" }, "Expires on (optional)"), expires),
    h("div", { class: "field" }, h("label", { for: "link-password" }, "Password (optional)"), password),
    h("div", { class: "field field-button" }, h("button", { type: "submit", class: "btn" }, "Create link")));
  const created = h("div", { class: "link-created", hidden: true });
  const links = h("ul", { class: "share-list", id: "share-links" });

  // Who has access -------------------------------------------------------------------------
  const access = h("ul", { class: "access-list", id: "share-access" });

  const body = h("div", { class: "share-dialog" }, msg,
    h("section", { "aria-labelledby": "share-people-title" }, h("h3", { id: "share-people-title" }, "People"), peopleForm, groupForm, people),
    h("section", { "aria-labelledby": "share-links-title" }, h("h3", { id: "share-links-title" }, "Links"), linkForm, created, links),
    h("section", { "aria-labelledby": "share-access-title" }, h("h3", { id: "share-access-title" }, "Who has access and why"), access));
  const done = h("button", { type: "button", class: "btn btn-primary" }, "Done");
  const dlg = openDialog({ title: `Share “${name}”`, body, actions: [done], wide: true, onClose: () => onChange && onChange() });
  done.addEventListener("click", () => dlg.close());

  const fail = (err) => showError(err, msg);

  async function ancestorShares() {
    // Grants on the folders above the item reach it too (owner-only lists).
    let folderPath;
    if (kind === "folder") folderPath = (await api("GET", `folders/${id}`)).path;
    else {
      const doc = await api("GET", `documents/${id}`);
      folderPath = (await api("GET", `folders/${doc.parent_folder_id}`)).path;
    }
    const ids = folderPath.split("/").filter(Boolean).map(Number).filter((f) => !(kind === "folder" && f === id));
    await lookupNames({ folders: ids });
    const lists = await Promise.all(ids.map((f) => apiAll(`folders/${f}/shares`).then((items) => items.map((s) => ({ ...s, via_folder: f }))).catch(() => [])));
    return lists.flat();
  }

  async function refresh() {
    msg.hidden = true;
    let shares;
    try {
      shares = (await apiAll(listPath)).filter((s) => s.is_active !== false && !s.revoked_at);
    } catch (err) {
      fail(err);
      return;
    }
    const inherited = await ancestorShares().catch(() => []);
    const activeInherited = inherited.filter((s) => s.is_active !== false && !s.revoked_at && s.kind !== "link");
    await lookupNames({ users: [...shares, ...activeInherited].map((s) => s.user_id).filter(Boolean) });
    const who = (s) => (s.kind === "group" ? `Group “${s.group_name || `#${s.group_id}`}”`
      : s.user_id ? `${userName(s.user_id)}${s.email ? ` (${s.email})` : ""}` : s.email || "Unknown");

    const direct = shares.filter((s) => s.kind !== "link");
    const shareWhy = (s) => {
      const where = s.via_folder ? `through the folder “${folderName(s.via_folder) || `#${s.via_folder}`}”` : "shared directly";
      return s.kind === "group" ? `${where}, for every member` : where;
    };
    clear(people, direct.length ? direct.map((s) => {
      const sel = levelSelect(`share-level-${s.id}`, s.permission, `Permission for ${who(s)}`);
      sel.addEventListener("change", async () => {
        try {
          await api("PATCH", `shares/${s.id}`, { json: { permission: sel.value } });
          toast(`${who(s)} now ${permissionLabel(sel.value).toLowerCase()}.`, "success");
          refresh();
        } catch (err) {
          fail(err);
        }
      });
      const remove = h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-label": `Stop sharing with ${who(s)}` }, "Remove");
      remove.addEventListener("click", async () => {
        try {
          await api("DELETE", `shares/${s.id}`);
          toast(`Stopped sharing with ${who(s)}.`, "success");
          refresh();
        } catch (err) {
          fail(err);
        }
      });
      return h("li", { class: "share-row", dataset: { shareId: s.id } },
        h("span", { class: "share-who" }, who(s), s.kind === "email" ? h("span", { class: "badge" }, "Invited") : null,
          s.expires_at ? h("span", { class: "muted" }, ` · until ${formatDate(s.expires_at)}`) : null),
        sel, remove);
    }) : h("li", { class: "empty" }, "Not shared with anyone yet."));

    const linkShares = shares.filter((s) => s.kind === "link");
    clear(links, linkShares.map((s) => {
      const revoke = h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-label": "Revoke this link" }, "Revoke");
      revoke.addEventListener("click", async () => {
        try {
          await api("DELETE", `shares/${s.id}`);
          toast("Link revoked. It stops working at once.", "success");
          created.hidden = true;
          refresh();
        } catch (err) {
          fail(err);
        }
      });
      const bits = [permissionLabel(s.permission)];
      bits.push(s.expires_at ? `expires ${formatDate(s.expires_at)}` : "no expiry");
      if (s.has_password) bits.push("password");
      return h("li", { class: "share-row", dataset: { shareId: s.id } },
        h("span", { class: "share-who" }, "Anyone with the link", h("span", { class: "muted" }, ` · ${bits.join(" · ")}`)), revoke);
    }));

    // Who has access and why.
    const rows = [h("li", {}, h("strong", {}, ME ? `${ME.name} (you)` : "You"), h("span", { class: "muted" }, " — Owner")) ];
    const userIds = [...new Set([...direct, ...activeInherited].map((s) => s.user_id).filter(Boolean))];
    if (kind === "document" && FEATURES.access) {
      const answers = await Promise.all(userIds.map((u) => api("GET", `documents/${id}/access`, { query: { user_id: u } }).catch(() => null)));
      await lookupNames({ folders: answers.flatMap((a) => (a ? a.via.map((v) => v.folder_id) : [])).filter(Boolean) });
      userIds.forEach((u, i) => {
        const a = answers[i];
        if (!a || a.permission === "NONE") return;
        rows.push(h("li", { dataset: { userId: u } }, h("strong", {}, userName(u)), h("span", { class: "muted" }, ` — ${permissionLabel(a.permission)}: ${whyText(a.via)}`)));
      });
      for (const s of [...direct, ...activeInherited].filter((x) => x.kind === "group")) {
        rows.push(h("li", {}, h("strong", {}, who(s)), h("span", { class: "muted" }, ` — ${permissionLabel(s.permission)}: ${shareWhy(s)}`)));
      }
    } else {
      for (const s of [...direct, ...activeInherited]) {
        rows.push(h("li", {}, h("strong", {}, who(s)), h("span", { class: "muted" }, ` — ${permissionLabel(s.permission)}: ${shareWhy(s)}`)));
      }
    }
    if (linkShares.length) rows.push(h("li", {}, h("strong", {}, "Anyone with a link"), h("span", { class: "muted" }, ` — ${linkShares.length} active link${linkShares.length > 1 ? "s" : ""}`)));
    clear(access, rows);
  }

  peopleForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "shares", { json: { ...target, permission: level.value, email: email.value.trim() } });
      toast(`Shared with ${email.value.trim()}.`, "success");
      email.value = "";
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  groupForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = groupSelect.selectedOptions[0];
    try {
      await api("POST", "shares", { json: { ...target, permission: groupLevel.value, group_id: Number(groupSelect.value) } });
      toast(`Shared with the group ${chosen ? chosen.textContent : ""}.`, "success");
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  linkForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const payload = { ...target, permission: linkLevel.value, link: true };
    if (expires.value) payload.expires_at = endOfDay(expires.value);
    if (password.value) payload.password = password.value;
    try {
      const share = await api("POST", "shares", { json: payload });
      const url = linkUrl(share.token);
      const field = h("input", { id: "link-url", type: "text", readonly: true, value: url, "aria-label": "Link address" });
      const copy = h("button", { type: "button", class: "btn btn-primary", id: "copy-link" }, "Copy link");
      copy.addEventListener("click", () => copyText(url, field));
      clear(created, h("p", { class: "muted" }, "Copy the link now: for safety it is shown only once."), h("div", { class: "copy-row" }, field, copy));
      created.hidden = false;
      password.value = "";
      refresh();
    } catch (err) {
      fail(err);
    }
  });

  refresh();
  email.focus();
}
