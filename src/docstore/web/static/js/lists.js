// The list pages: shared with me, trash, activity.
import {
  api, clear, confirmDialog, documentName, FEATURES, fileKind, folderName, h, icon,
  lookupNames, ME, PAGE, permissionLabel, refreshQuota, showError, timeEl, toast, unavailable, userName,
} from "./core.js";

const $ = (x) => document.getElementById(x);

function table(headers, rows, caption) {
  return h("table", { class: "listing" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

// ---- shared with me -----------------------------------------------------------------------

async function sharedPage() {
  const box = $("content");
  if (!FEATURES.shared_with_me) {
    clear(box, unavailable("Sharing"));
    return;
  }
  try {
    const page = await api("GET", "shared-with-me", { query: { limit: 200 } });
    const items = Array.isArray(page) ? page : page.items;
    await lookupNames({ users: items.flatMap((i) => [i.owner_id, i.shared_by]).filter(Boolean) });
    if (!items.length) {
      clear(box, h("div", { class: "empty-state" }, icon("users"), h("p", {}, "Nothing has been shared with you yet."),
        h("p", { class: "muted" }, "When someone shares a document or folder with your email address, it appears here.")));
      return;
    }
    clear(box, table(["Name", "Owner", "Your access", "Shared"], items.map((i) => {
      const href = i.kind === "folder" ? `/folders/${i.id}` : `/documents/${i.id}`;
      const kind = i.kind === "folder" ? "folder" : fileKind(i.name, i.mime_type);
      return h("tr", { dataset: { kind: i.kind, id: i.id, name: i.name } },
        h("td", { class: "col-name" }, h("div", { class: "name-cell" }, icon(kind === "other" ? "file" : kind), h("a", { href, class: "item-link" }, i.name))),
        h("td", {}, userName(i.owner_id)),
        h("td", {}, h("span", { class: "badge" }, permissionLabel(i.permission))),
        h("td", { class: "col-date" }, timeEl(i.shared_at || i.created_at)));
    }), "Items shared with me"));
  } catch (err) {
    showError(err, box);
  }
}

// ---- trash --------------------------------------------------------------------------------

async function trashPage() {
  const box = $("content");
  const empty = $("empty-trash");
  if (!FEATURES.trash) {
    clear(box, unavailable("The trash"));
    empty.hidden = true;
    return;
  }
  try {
    const page = await api("GET", "trash", { query: { limit: 500 } });
    const items = Array.isArray(page) ? page : page.items;
    empty.hidden = !items.length;
    if (!items.length) {
      clear(box, h("div", { class: "empty-state" }, icon("trash"), h("p", {}, "The trash is empty."),
        h("p", { class: "muted" }, "Deleted items stay here for 30 days before they are removed for good.")));
      return;
    }
    await lookupNames({ folders: items.map((i) => i.original_parent_id).filter(Boolean) });
    clear(box, table(["Name", "Deleted", "Was in", ""], items.map((i) => {
      const kind = i.kind === "folder" ? "folder" : fileKind(i.name, i.mime_type);
      const where = i.original_parent_id === (ME && ME.root_folder_id) ? "My files" : folderName(i.original_parent_id) || "—";
      const restore = h("button", { type: "button", class: "btn btn-small", "aria-label": `Restore ${i.name}` }, "Restore");
      const purge = h("button", { type: "button", class: "btn btn-small btn-ghost danger", "aria-label": `Delete ${i.name} forever` }, "Delete forever");
      restore.addEventListener("click", async () => {
        try {
          const out = await api("POST", i.kind === "folder" ? `folders/${i.id}/restore` : `documents/${i.id}/restore`);
          const href = i.kind === "folder" ? `/folders/${i.id}` : `/documents/${i.id}`;
          const restoredName = out && out.name ? out.name : i.name;
          toast(`“${restoredName}” is back.`, "success", { action: h("a", { class: "toast-action", href }, "Open") });
          trashPage();
        } catch (err) {
          showError(err);
        }
      });
      purge.addEventListener("click", async () => {
        const ok = await confirmDialog({ title: `Delete “${i.name}” forever?`, message: "It cannot be restored afterwards. Its space is freed.", confirm: "Delete forever", danger: true });
        if (!ok) return;
        try {
          await api("DELETE", i.kind === "folder" ? `trash/folders/${i.id}` : `trash/${i.id}`);
          toast(`“${i.name}” was deleted for good.`, "success");
          trashPage();
          refreshQuota();
        } catch (err) {
          showError(err);
        }
      });
      return h("tr", { dataset: { kind: i.kind, id: i.id, name: i.name } },
        h("td", { class: "col-name" }, h("div", { class: "name-cell" }, icon(kind === "other" ? "file" : kind), h("span", {}, i.name))),
        h("td", { class: "col-date" }, timeEl(i.deleted_at)),
        h("td", {}, where),
        h("td", { class: "col-actions" }, h("div", { class: "button-row" }, restore, purge)));
    }), "Items in the trash"));
  } catch (err) {
    showError(err, box);
  }
}

function setupTrash() {
  $("empty-trash").addEventListener("click", async () => {
    const ok = await confirmDialog({ title: "Empty the trash?", message: "Everything in the trash is deleted for good.", confirm: "Empty trash", danger: true });
    if (!ok) return;
    try {
      await api("DELETE", "trash");
      toast("The trash is empty.", "success");
      trashPage();
      refreshQuota();
    } catch (err) {
      showError(err);
    }
  });
  trashPage();
}

// ---- activity -----------------------------------------------------------------------------

const VERBS = {
  UPLOAD: "uploaded", DOWNLOAD: "downloaded", VIEW: "viewed", SHARE: "shared", UNSHARE: "stopped sharing",
  DELETE: "deleted", RESTORE: "restored", PURGE: "deleted for good", MOVE: "moved", RENAME: "renamed",
  VERSION_DELETE: "deleted a version of", COMMENT: "commented on", LOGIN: "signed in", LOGIN_FAILED: "failed to sign in",
};

let activityCursor = null;

// The client behind an entry, short: "docstore-sync/0.1.0", "curl/8.5.0", "Firefox/126.0".
function clientName(ua) {
  if (!ua) return "";
  const browser = ua.match(/(Firefox|Edg|Chrome|Safari)\/[\d.]+/);
  return browser ? browser[0] : ua.split(" ")[0];
}

async function activityPage(more = false) {
  const box = $("content");
  if (!FEATURES.audit) {
    clear(box, unavailable("The activity log"));
    return;
  }
  const action = $("action-filter").value;
  try {
    const page = await api("GET", "audit", { query: { limit: 50, cursor: more ? activityCursor : null, action } });
    const items = page.items || [];
    activityCursor = page.next_cursor;
    await lookupNames({
      users: items.map((e) => e.user_id).filter(Boolean),
      documents: items.map((e) => e.document_id).filter(Boolean),
      folders: items.map((e) => e.folder_id).filter(Boolean),
    });
    const rows = items.map((e) => {
      let what = h("span", { class: "muted" }, "—");
      if (e.document_id) {
        const name = documentName(e.document_id);
        what = name ? h("a", { href: `/documents/${e.document_id}` }, name) : h("span", { class: "muted" }, `document #${e.document_id}`);
      } else if (e.folder_id) {
        const name = e.folder_id === (ME && ME.root_folder_id) ? "My files" : folderName(e.folder_id);
        what = name ? h("a", { href: `/folders/${e.folder_id}` }, icon("folder"), " ", name) : h("span", { class: "muted" }, `folder #${e.folder_id}`);
      }
      return h("tr", { dataset: { action: e.action } },
        h("td", { class: "col-date" }, timeEl(e.timestamp)),
        h("td", {}, userName(e.user_id)),
        h("td", {}, h("span", { class: `badge action-${e.action.toLowerCase()}` }, VERBS[e.action] || e.action)),
        h("td", {}, what),
        h("td", { class: "col-ip muted", title: e.user_agent || "" },
          [e.ip_address, clientName(e.user_agent)].filter(Boolean).join(" · ")));
    });
    let tbody = box.querySelector("tbody");
    if (!more || !tbody) {
      if (!items.length) {
        clear(box, h("div", { class: "empty-state" }, icon("activity"), h("p", {}, "No activity yet.")));
        $("more").hidden = true;
        return;
      }
      clear(box, table(["When", "Who", "What", "Item", "From"], rows, "Activity on my documents"));
    } else tbody.append(...rows);
    $("more").hidden = !activityCursor;
  } catch (err) {
    showError(err, box);
  }
}

function setupActivity() {
  const sel = $("action-filter");
  for (const a of Object.keys(VERBS)) sel.append(h("option", { value: a }, a.charAt(0) + a.slice(1).toLowerCase().replace("_", " ")));
  sel.addEventListener("change", () => activityPage());
  $("more").addEventListener("click", () => activityPage(true));
  activityPage();
}

if (PAGE.page === "shared") sharedPage();
else if (PAGE.page === "trash") setupTrash();
else if (PAGE.page === "activity") setupActivity();
