// The folder browser: breadcrumbs, listing (folders first), sorting, paging, folder actions,
// drag-and-drop uploads.
import {
  api, clear, confirmDialog, FEATURES, folderName, formatBytes, h, icon, levelAtLeast, lookupNames,
  ME, openDialog, PAGE, promptDialog, refreshQuota, showError, timeEl, toast, userName, fileKind,
} from "./core.js";
import { UploadQueue } from "./upload.js";
import { openShareDialog } from "./share.js";

const PAGE_SIZE = 50;
const folderId = PAGE.folder_id;
const permission = PAGE.permission;
let folder = null;
let order = localStorage.getItem("docstore.order") === "updated_at" ? "updated_at" : "name";
let cursors = [null]; // cursor of each page visited; the last one is the current page
let sharedFlags = { folders: [], documents: [] };

const $ = (id) => document.getElementById(id);

async function loadCrumbs() {
  const ids = folder.path.split("/").filter(Boolean).map(Number);
  await lookupNames({ folders: ids.filter((id) => id !== folder.id), users: [folder.owner_id] });
  const crumbs = [];
  const ownRoot = ME && ids[0] === ME.root_folder_id;
  if (!ownRoot) crumbs.push(h("a", { href: "/shared" }, "Shared with me"));
  for (const id of ids) {
    if (id === folder.id) break;
    const label = id === (ME && ME.root_folder_id) ? "My files" : folderName(id);
    if (label === null) continue; // an ancestor the caller cannot see
    crumbs.push(h("a", { href: `/folders/${id}` }, label));
  }
  const here = folder.id === (ME && ME.root_folder_id) ? "My files" : folder.name;
  crumbs.push(h("span", { "aria-current": "page" }, here));
  const list = h("ol", {}, crumbs.map((c) => h("li", {}, c)));
  clear($("crumbs"), list);
  $("crumbs").hidden = crumbs.length <= 1; // the title says it all at the top
  $("folder-title").textContent = here;
  document.title = `${here} · docstore`;
}

function ownerCell(item) {
  return item.owner_id === (ME && ME.id) ? "You" : userName(item.owner_id);
}

function actionMenu(item) {
  const canEdit = levelAtLeast(permission, "EDIT");
  const isOwner = permission === "OWNER";
  const buttons = [];
  const add = (label, fn, cls = "") => buttons.push(h("button", { type: "button", class: `menu-item ${cls}`, onclick: (ev) => {
    ev.target.closest("details").open = false;
    fn();
  } }, label));
  if (item.kind === "document") {
    buttons.push(h("a", { class: "menu-item", href: `/api/v1/documents/${item.id}/download` }, "Download"));
  }
  if (canEdit) add("Rename", () => rename(item));
  if (canEdit) add("Move", () => move(item));
  if (isOwner && FEATURES.shares) add("Share", () => openShareDialog({ kind: item.kind, id: item.id, name: item.name, onChange: load }));
  if (isOwner) add("Delete", () => remove(item), "danger");
  if (!buttons.length) return "";
  return h("details", { class: "menu" },
    h("summary", { class: "icon-button", "aria-label": `Actions for ${item.name}`, title: "Actions" }, icon("more")),
    h("div", { class: "menu-list" }, buttons));
}

function row(item) {
  const href = item.kind === "folder" ? `/folders/${item.id}` : `/documents/${item.id}`;
  const shared = (item.kind === "folder" ? sharedFlags.folders : sharedFlags.documents).includes(item.id);
  const kind = item.kind === "folder" ? "folder" : fileKind(item.name, item.mime_type);
  return h("tr", { dataset: { kind: item.kind, id: item.id, name: item.name } },
    h("td", { class: "col-name" },
      h("div", { class: "name-cell" },
        icon(kind === "other" ? "file" : kind),
        h("a", { href, class: "item-link" }, item.name),
        shared ? h("span", { class: "badge badge-shared", title: "Shared with others" }, "Shared") : null)),
    h("td", { class: "col-size" }, item.kind === "folder" ? "—" : formatBytes(item.size_bytes)),
    h("td", { class: "col-date" }, timeEl(item.updated_at)),
    h("td", { class: "col-owner" }, h("span", { class: item.owner_id === (ME && ME.id) ? "owner-me" : "badge badge-owner" }, ownerCell(item))),
    h("td", { class: "col-actions" }, actionMenu(item)));
}

export async function load() {
  const cursor = cursors[cursors.length - 1];
  const box = $("listing-error");
  box.hidden = true;
  try {
    const [page, flags] = await Promise.all([
      api("GET", `folders/${folderId}/children`, { query: { limit: PAGE_SIZE, order_by: order, cursor } }),
      permission === "OWNER" ? api("GET", `/web/shared-flags/${folderId}`).catch(() => null) : null,
    ]);
    sharedFlags = flags || { folders: [], documents: [] };
    folder = page.folder;
    await Promise.all([loadCrumbs(), lookupNames({ users: page.items.map((i) => i.owner_id) })]);
    clear($("rows"), page.items.map(row));
    $("empty").hidden = page.items.length > 0 || cursors.length > 1;
    $("listing").hidden = page.items.length === 0 && cursors.length === 1;
    $("prev").disabled = cursors.length <= 1;
    $("next").disabled = !page.next_cursor;
    $("next").dataset.cursor = page.next_cursor || "";
    $("pager").hidden = cursors.length <= 1 && !page.next_cursor;
    $("page-no").textContent = `Page ${cursors.length}`;
  } catch (err) {
    showError(err, box);
  }
}

async function newFolder() {
  const name = await promptDialog({
    title: "New folder",
    label: "Folder name",
    submit: "Create",
    validate: (v) => api("POST", "folders", { json: { name: v, parent_id: folderId } }),
  });
  if (name) {
    toast(`Folder “${name}” created.`, "success");
    await load();
  }
}

async function rename(item) {
  const path = item.kind === "folder" ? `folders/${item.id}` : `documents/${item.id}`;
  const name = await promptDialog({
    title: `Rename ${item.kind}`,
    label: "New name",
    value: item.name,
    submit: "Rename",
    validate: (v) => api("PATCH", path, { json: { name: v } }),
  });
  if (name) {
    toast(`Renamed to “${name}”.`, "success");
    await load();
  }
}

async function remove(item) {
  const what = item.kind === "folder" ? "this folder and everything in it" : "this document";
  const ok = await confirmDialog({
    title: `Delete “${item.name}”?`,
    message: `This moves ${what} to the trash. You can restore it from the trash for 30 days.`,
    confirm: "Move to trash",
    danger: true,
  });
  if (!ok) return;
  try {
    await api("DELETE", item.kind === "folder" ? `folders/${item.id}` : `documents/${item.id}`);
    toast(`“${item.name}” moved to the trash.`, "success", { action: h("a", { href: "/trash", class: "toast-action" }, "Open trash") });
    await load();
    refreshQuota();
  } catch (err) {
    showError(err);
  }
}

/** A folder picker: browse down from the top you can see, then "Move here". */
export function pickFolder({ title, startId, excludeId, submit = "Move here" }) {
  return new Promise((resolve) => {
    let current = null;
    let chosen = null;
    const crumb = h("p", { class: "picker-where" });
    const list = h("ul", { class: "picker-list" });
    const up = h("button", { type: "button", class: "btn btn-small" }, "↑ Up");
    const error = h("div", { hidden: true });
    const confirm = h("button", { type: "button", class: "btn btn-primary" }, submit);
    const cancel = h("button", { type: "button", class: "btn btn-ghost" }, "Cancel");
    const show = async (id) => {
      try {
        const page = await api("GET", `folders/${id}/children`, { query: { limit: 200, order_by: "name" } });
        current = page.folder;
        const isRoot = ME && current.id === ME.root_folder_id;
        crumb.textContent = isRoot ? "My files" : current.name;
        up.disabled = !current.parent_id;
        const folders = page.items.filter((i) => i.kind === "folder" && i.id !== excludeId);
        clear(list, folders.length ? folders.map((f) => h("li", {},
          h("button", { type: "button", class: "picker-item", onclick: () => show(f.id) }, icon("folder"), f.name)))
          : h("li", { class: "empty" }, "No subfolders"));
        error.hidden = true;
      } catch (err) {
        showError(err, error);
      }
    };
    up.addEventListener("click", async () => {
      if (!current || !current.parent_id) return;
      try {
        await api("GET", `folders/${current.parent_id}`);
        show(current.parent_id);
      } catch (_) {
        up.disabled = true; // the parent is not visible to this user
      }
    });
    const body = h("div", { class: "picker" }, h("div", { class: "picker-bar" }, up, crumb), list, error);
    const dlg = openDialog({ title, body, actions: [cancel, confirm], onClose: () => resolve(chosen) });
    cancel.addEventListener("click", () => dlg.close());
    confirm.addEventListener("click", () => {
      chosen = current;
      dlg.close();
    });
    show(startId);
  });
}

async function move(item) {
  const target = await pickFolder({ title: `Move “${item.name}”`, startId: folder.id, excludeId: item.kind === "folder" ? item.id : null });
  if (!target) return;
  try {
    if (item.kind === "folder") await api("PATCH", `folders/${item.id}`, { json: { parent_id: target.id } });
    else await api("PATCH", `documents/${item.id}`, { json: { parent_folder_id: target.id } });
    toast(`Moved “${item.name}” to “${target.id === (ME && ME.root_folder_id) ? "My files" : target.name}”.`, "success");
    await load();
  } catch (err) {
    showError(err);
  }
}

/** Every file below dropped directory entries, as {file, path} (path from the entry's name). */
async function readTree(dirs) {
  const out = [];
  const files = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));
  const readAll = async (dir) => {
    const reader = dir.createReader();
    const all = [];
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) return all;
      all.push(...batch);
    }
  };
  const walk = async (entry, prefix) => {
    if (entry.isFile) out.push({ file: await files(entry), path: prefix + entry.name });
    else if (entry.isDirectory) {
      for (const child of await readAll(entry)) await walk(child, `${prefix}${entry.name}/`);
    }
  };
  for (const dir of dirs) await walk(dir, "");
  return out;
}

function setupUploads() {
  const canUpload = levelAtLeast(permission, "EDIT");
  const input = $("file-input");
  const zone = $("dropzone");
  if (!canUpload) {
    $("upload-button").hidden = true;
    $("upload-folder-button").hidden = true;
    zone.hidden = true;
    return;
  }
  const queue = new UploadQueue({
    folderId,
    list: $("upload-list"),
    overall: $("overall"),
    overallText: $("overall-text"),
    panel: $("uploads"),
    onUploaded: () => load(),
  });
  $("upload-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    queue.add(input.files);
    input.value = "";
  });
  const folderInput = $("folder-input");
  $("upload-folder-button").addEventListener("click", () => folderInput.click());
  folderInput.addEventListener("change", () => {
    queue.addTree([...folderInput.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    folderInput.value = "";
  });
  const main = document.getElementById("main");
  let depth = 0;
  const hasFiles = (ev) => ev.dataTransfer && [...(ev.dataTransfer.types || [])].includes("Files");
  main.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    depth++;
    zone.classList.add("dragging");
  });
  main.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  main.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
  });
  main.addEventListener("drop", (ev) => {
    if (!ev.dataTransfer || !ev.dataTransfer.files.length) return;
    ev.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    // A dropped folder: every file below it, at its path, in batches (POST /files/batch).
    const entries = [...(ev.dataTransfer.items || [])]
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
    if (entries.some((e) => e && e.isDirectory)) {
      const loose = [...ev.dataTransfer.files].filter((_, i) => !(entries[i] && entries[i].isDirectory));
      if (loose.length) queue.add(loose);
      readTree(entries.filter((e) => e && e.isDirectory))
        .then((tree) => queue.addTree(tree))
        .catch(showError);
      return;
    }
    queue.add(ev.dataTransfer.files);
  });
}

function setup() {
  const sort = $("sort");
  sort.value = order;
  sort.addEventListener("change", () => {
    order = sort.value;
    localStorage.setItem("docstore.order", order);
    cursors = [null];
    load();
  });
  $("prev").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    load();
  });
  $("next").addEventListener("click", () => {
    const c = $("next").dataset.cursor;
    if (c) cursors.push(c);
    load();
  });
  if (levelAtLeast(permission, "EDIT")) $("new-folder").addEventListener("click", newFolder);
  else $("new-folder").hidden = true;
  const share = $("share-folder");
  if (permission === "OWNER" && !PAGE.is_root && FEATURES.shares) {
    share.hidden = false;
    share.addEventListener("click", () => openShareDialog({ kind: "folder", id: folderId, name: folder ? folder.name : "", onChange: load }));
  }
  setupUploads();
  load().then(watchChanges);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The change feed, scoped to this folder: when something in it changes elsewhere (another
// tab, device or person), the listing is loaded again. A long-poll costs the server no
// thread while it waits; the loop is bounded and ends when the cursor expires or the
// folder is gone.
async function watchChanges() {
  if (!folder || !window.fetch) return;
  let cursor;
  try {
    cursor = (await api("GET", "changes/cursor", { query: { folder_id: folder.id } })).cursor;
  } catch {
    return;
  }
  for (let i = 0; i < 100000; i++) {
    try {
      const wait = await api("GET", "changes/wait", { query: { cursor, timeout: 30 } });
      if (wait.backoff) await sleep(wait.backoff * 1000);
      if (!wait.changes) continue;
      const page = await api("GET", "changes", { query: { cursor, limit: 1000 } });
      cursor = page.cursor;
      if (page.changes.length) await load();
    } catch (err) {
      if (err.status === 404 || err.status === 410 || err.status === 401) return;
      await sleep(5000);
    }
  }
}

setup();
