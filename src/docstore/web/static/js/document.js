// The document page: preview, download, version history, comments, editing with conflict
// handling, sharing and the access explanation.
import {
  api, apiAll, ApiError, clear, confirmDialog, FEATURES, fileKind, folderName, formatBytes,
  formatDate, h, levelAtLeast, lookupNames, ME, openDialog, PAGE, permissionLabel, refreshQuota,
  showError, timeEl, toast, userName, unavailable,
} from "./core.js";
import { renderMarkdown } from "./markdown.js";
import { openShareDialog } from "./share.js";

const id = PAGE.document_id;
const $ = (x) => document.getElementById(x);
const TEXT_LIMIT = 2 * 1024 * 1024;
const MEDIA_LIMIT = 50 * 1024 * 1024;
let doc = null;
let editing = null; // { base: version id }
let objectUrl = null;

/** The bytes of a version, through a short-lived signed URL. */
async function fetchBytes(versionId) {
  const out = await api("GET", `documents/${id}/download`, { query: { version_id: versionId, redirect: "false" } });
  let resp;
  try {
    resp = await fetch(out.url, { credentials: "omit" });
  } catch (_) {
    throw new ApiError(0, "network", "The file could not be fetched from storage.");
  }
  if (!resp.ok) throw new ApiError(resp.status, "storage", "The file could not be fetched from storage.");
  return resp;
}

async function fetchText(versionId) {
  const resp = await fetchBytes(versionId);
  return new TextDecoder("utf-8").decode(await resp.arrayBuffer());
}

async function showPreview() {
  const box = $("preview");
  const kind = fileKind(doc.name, doc.mime_type);
  const version = doc.current_version;
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  if (!version) {
    clear(box, h("p", { class: "empty" }, "This document has no content yet."));
    return;
  }
  if (kind === "other") {
    clear(box, h("div", { class: "empty" }, h("p", {}, "There is no preview for this type of file."),
      h("a", { class: "btn", href: `/api/v1/documents/${id}/download` }, "Download")));
    return;
  }
  const limit = kind === "text" || kind === "markdown" ? TEXT_LIMIT : MEDIA_LIMIT;
  if (version.size_bytes > limit) {
    clear(box, h("p", { class: "empty" }, `This file is too large to preview (${formatBytes(version.size_bytes)}). Download it instead.`));
    return;
  }
  clear(box, h("p", { class: "muted" }, "Loading preview…"));
  try {
    if (kind === "text") {
      clear(box, h("pre", { class: "text-preview", tabindex: 0, "aria-label": `Text of ${doc.name}` }, await fetchText(version.id)));
    } else if (kind === "markdown") {
      const article = h("article", { class: "markdown-body" });
      article.innerHTML = renderMarkdown(await fetchText(version.id)); // escaped by the renderer
      clear(box, article);
    } else {
      const resp = await fetchBytes(version.id);
      const type = kind === "pdf" ? "application/pdf" : doc.mime_type;
      objectUrl = URL.createObjectURL(new Blob([await resp.arrayBuffer()], { type }));
      if (kind === "image") clear(box, h("img", { class: "image-preview", src: objectUrl, alt: `Preview of ${doc.name}` }));
      else clear(box, h("iframe", { class: "pdf-preview", src: objectUrl, title: `Preview of ${doc.name}` }));
    }
  } catch (err) {
    clear(box, h("p", { class: "alert alert-error", role: "alert" }, `The preview could not be loaded: ${err.message}`));
  }
}

function accessSentence(a) {
  if (a.permission === "OWNER") return "You own this document.";
  const level = permissionLabel(a.permission).toLowerCase().replace("can ", "");
  const reasons = a.via.map((v) => {
    if (v.kind === "folder") return `the folder “${folderName(v.folder_id) || `#${v.folder_id}`}” is shared with you`;
    if (v.kind === "direct") return "it was shared with you directly";
    if (v.kind === "group") {
      const where = v.folder_id ? `the folder “${folderName(v.folder_id) || `#${v.folder_id}`}”` : "it";
      return `${where} is shared with your group “${v.group_name || `#${v.group_id}`}”`;
    }
    if (v.kind === "link") return "you opened a shared link";
    return "you own it";
  });
  return `You can ${level} this document because ${reasons.join(", and ") || "it is shared with you"}.`;
}

async function showAccess() {
  const el = $("access");
  if (!FEATURES.access) {
    el.textContent = doc.permission === "OWNER" ? "You own this document." : `Your access: ${permissionLabel(doc.permission)}.`;
    return;
  }
  try {
    const a = await api("GET", `documents/${id}/access`);
    await lookupNames({ folders: a.via.map((v) => v.folder_id).filter(Boolean) });
    el.textContent = accessSentence(a);
  } catch (_) {
    el.textContent = `Your access: ${permissionLabel(doc.permission)}.`;
  }
}

async function showCrumbs() {
  try {
    const parent = await api("GET", `folders/${doc.parent_folder_id}`);
    const ids = parent.path.split("/").filter(Boolean).map(Number);
    await lookupNames({ folders: ids });
    const own = ME && ids[0] === ME.root_folder_id;
    const crumbs = own ? [] : [h("a", { href: "/shared" }, "Shared with me")];
    for (const f of ids) {
      const label = f === (ME && ME.root_folder_id) ? "My files" : folderName(f);
      if (label) crumbs.push(h("a", { href: `/folders/${f}` }, label));
    }
    crumbs.push(h("span", { "aria-current": "page" }, doc.name));
    clear($("crumbs"), h("ol", {}, crumbs.map((c) => h("li", {}, c))));
  } catch (_) {
    clear($("crumbs"), h("ol", {}, h("li", {}, h("a", { href: "/shared" }, "Shared with me")), h("li", {}, doc.name)));
  }
}

async function showVersions() {
  const body = $("version-rows");
  try {
    const versions = await apiAll(`documents/${id}/versions`);
    await lookupNames({ users: versions.map((v) => v.created_by).filter(Boolean), documentId: id });
    const canEdit = levelAtLeast(doc.permission, "EDIT");
    const isOwner = doc.permission === "OWNER";
    clear(body, versions.map((v) => {
      const actions = [h("a", { class: "btn btn-small", href: `/api/v1/documents/${id}/download?version_id=${v.id}`, "aria-label": `Download version ${v.version_number}` }, "Download")];
      if (canEdit && !v.is_current) {
        actions.push(h("button", { type: "button", class: "btn btn-small", "aria-label": `Restore version ${v.version_number}`, onclick: () => restoreVersion(v) }, "Restore"));
      }
      if (canEdit) {
        actions.push(h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-pressed": String(v.keep_forever), "aria-label": `${v.keep_forever ? "Unpin" : "Pin"} version ${v.version_number}`, onclick: () => pinVersion(v) }, v.keep_forever ? "Unpin" : "Pin"));
      }
      if (isOwner && !v.is_current) {
        actions.push(h("button", { type: "button", class: "btn btn-small btn-ghost danger", "aria-label": `Delete version ${v.version_number}`, onclick: () => deleteVersion(v) }, "Delete"));
      }
      return h("tr", { dataset: { version: v.version_number }, class: v.is_current ? "current" : "" },
        h("td", {}, h("strong", {}, `v${v.version_number}`), v.is_current ? h("span", { class: "badge badge-current" }, "Current") : null),
        h("td", {}, formatBytes(v.size_bytes)),
        h("td", {}, userName(v.created_by)),
        h("td", {}, timeEl(v.created_at)),
        h("td", {}, v.keep_forever ? h("span", { class: "badge badge-pin" }, "Pinned") : h("span", { class: "muted" }, "—")),
        h("td", { class: "col-actions" }, h("div", { class: "button-row" }, actions)));
    }));
    $("version-count").textContent = `${versions.length} version${versions.length === 1 ? "" : "s"}`;
  } catch (err) {
    showError(err, $("versions-error"));
  }
}

async function restoreVersion(v) {
  try {
    const res = await api("POST", `documents/${id}/versions/${v.id}/restore`);
    toast(`Version ${v.version_number} restored as version ${res.version.version_number}.`, "success");
    await reload();
  } catch (err) {
    showError(err);
  }
}

async function pinVersion(v) {
  try {
    await api("PATCH", `documents/${id}/versions/${v.id}`, { json: { keep_forever: !v.keep_forever } });
    toast(v.keep_forever ? `Version ${v.version_number} unpinned.` : `Version ${v.version_number} pinned: it is kept forever.`, "success");
    await showVersions();
  } catch (err) {
    showError(err);
  }
}

async function deleteVersion(v) {
  const ok = await confirmDialog({ title: `Delete version ${v.version_number}?`, message: "This version is removed for good and its space is freed.", confirm: "Delete version", danger: true });
  if (!ok) return;
  try {
    await api("DELETE", `documents/${id}/versions/${v.id}`);
    toast(`Version ${v.version_number} deleted.`, "success");
    await showVersions();
    refreshQuota();
  } catch (err) {
    showError(err);
  }
}

async function showComments() {
  const list = $("comments");
  const form = $("comment-form");
  if (!FEATURES.comments) {
    clear(list, unavailable("Commenting"));
    form.hidden = true;
    return;
  }
  form.hidden = !levelAtLeast(doc.permission, "COMMENT");
  try {
    const comments = await apiAll(`documents/${id}/comments`);
    await lookupNames({ users: comments.map((c) => c.author_id).filter(Boolean), documentId: id });
    clear(list, comments.length ? comments.map((c) => h("li", { class: "comment" },
      h("div", { class: "comment-head" }, h("strong", {}, userName(c.author_id)), " ", h("span", { class: "muted" }, formatDate(c.created_at))),
      h("p", { class: "comment-body" }, c.body))) : h("li", { class: "empty" }, "No comments yet."));
  } catch (err) {
    showError(err, $("comments-error"));
  }
}

// ---- editing ------------------------------------------------------------------------------

async function startEdit() {
  const base = doc.current_version;
  try {
    const text = base ? await fetchText(base.id) : "";
    editing = { base: base ? base.id : null, number: base ? base.version_number : 0 };
    $("editor-text").value = text;
    $("editor-base").textContent = base ? `Editing from version ${base.version_number}` : "New content";
    $("editor").hidden = false;
    $("preview").hidden = true;
    $("edit").hidden = true;
    $("preview-title").textContent = "Edit";
    $("editor-text").focus();
  } catch (err) {
    showError(err);
  }
}

function stopEdit() {
  editing = null;
  $("editor").hidden = true;
  $("preview").hidden = false;
  $("edit").hidden = false;
  $("preview-title").textContent = "Preview";
}

async function saveText(mode) {
  return api("POST", `documents/${id}/versions`, {
    query: { base_version_id: editing.base, on_conflict: mode },
    body: $("editor-text").value,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

function conflictDialog(err) {
  const message = h("p", {}, "Someone saved a newer version while you were editing. Your text is not saved yet. How do you want to continue?");
  const problem = h("div", { hidden: true });
  const merge = h("button", { type: "button", class: "btn btn-primary", id: "conflict-merge" }, "Merge my changes");
  const copy = h("button", { type: "button", class: "btn", id: "conflict-copy" }, "Keep both (save mine as a copy)");
  const reload = h("button", { type: "button", class: "btn btn-ghost", id: "conflict-reload" }, "Reload (discard mine)");
  const dlg = openDialog({
    title: "This document changed",
    body: h("div", { class: "conflict" }, message, problem, h("ul", { class: "conflict-help muted" },
      h("li", {}, h("strong", {}, "Merge: "), "combine your edits with the new version when they touch different lines."),
      h("li", {}, h("strong", {}, "Keep both: "), "save your text as a separate copy next to this document."),
      h("li", {}, h("strong", {}, "Reload: "), "throw away your edits and open the latest version."))),
    actions: [reload, copy, merge],
    wide: true,
  });
  dlg.setAttribute("role", "alertdialog");
  dlg.dataset.currentVersion = String(err.body.current_version_id || "");
  const busy = (on) => { for (const b of [merge, copy, reload]) b.disabled = on; };
  merge.addEventListener("click", async () => {
    busy(true);
    try {
      const res = await saveText("merge");
      dlg.close();
      toast(`Your changes were merged into version ${res.version.version_number}.`, "success");
      stopEdit();
      await reload_();
    } catch (e) {
      busy(false);
      if (e.code === "merge_conflict") {
        merge.disabled = true;
        clear(problem, h("p", { class: "alert alert-error", role: "alert" }, "Your edits overlap with the other changes, so they cannot be merged automatically. Keep both, or reload."));
        problem.hidden = false;
      } else showError(e, problem);
    }
  });
  copy.addEventListener("click", async () => {
    busy(true);
    try {
      const res = await saveText("copy");
      dlg.close();
      stopEdit();
      toast(`Your text was saved as “${res.document.name}”.`, "success", { action: h("a", { class: "toast-action", href: `/documents/${res.document.id}` }, "Open copy") });
      await reload_();
    } catch (e) {
      busy(false);
      showError(e, problem);
    }
  });
  reload.addEventListener("click", async () => {
    dlg.close();
    stopEdit();
    await reload_();
    toast("Loaded the latest version.", "info");
  });
  merge.focus();
}

async function submitEdit(ev) {
  ev.preventDefault();
  const save = $("save");
  save.disabled = true;
  try {
    const res = await saveText("reject");
    stopEdit();
    toast(`Saved as version ${res.version.version_number}.`, "success");
    await reload_();
  } catch (err) {
    if (err.code === "version_conflict") conflictDialog(err);
    else showError(err, $("editor-error"));
  } finally {
    save.disabled = false;
  }
}

// ---- page ---------------------------------------------------------------------------------

function showHeader() {
  $("doc-title").textContent = doc.name;
  document.title = `${doc.name} · docstore`;
  $("doc-perm").textContent = permissionLabel(doc.permission);
  const v = doc.current_version;
  clear($("doc-meta"), `${formatBytes(doc.size_bytes)} · ${doc.mime_type}`, v ? ` · version ${v.version_number} saved ` : "", v ? timeEl(v.created_at) : "", v ? ` by ${userName(v.created_by)}` : "");
  const kind = fileKind(doc.name, doc.mime_type);
  const editable = (kind === "text" || kind === "markdown") && levelAtLeast(doc.permission, "EDIT") && doc.size_bytes <= TEXT_LIMIT;
  $("edit").hidden = !editable || editing !== null;
  $("share").hidden = !(doc.permission === "OWNER" && FEATURES.shares);
}

async function reload_() {
  try {
    doc = await api("GET", `documents/${id}`);
  } catch (err) {
    showError(err, $("doc-error"));
    return;
  }
  await lookupNames({ users: [doc.owner_id, doc.current_version && doc.current_version.created_by].filter(Boolean), documentId: id });
  showHeader();
  refreshQuota();
  await Promise.all([showCrumbs(), showAccess(), showPreview(), showVersions(), showComments()]);
}
const reload = reload_;

function setup() {
  $("download").href = `/api/v1/documents/${id}/download`;
  $("edit").addEventListener("click", startEdit);
  $("cancel-edit").addEventListener("click", async () => {
    stopEdit();
    showHeader();
  });
  $("editor").addEventListener("submit", submitEdit);
  $("share").addEventListener("click", () => openShareDialog({ kind: "document", id, name: doc.name, onChange: () => showAccess() }));
  $("comment-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("comment-text").value.trim();
    if (!text) return;
    try {
      await api("POST", `documents/${id}/comments`, { json: { body: text, version_id: doc.current_version ? doc.current_version.id : undefined } });
      $("comment-text").value = "";
      await showComments();
    } catch (err) {
      showError(err, $("comments-error"));
    }
  });
  reload_();
}

setup();
