// Shared helpers for every page: the API client, DOM building, dialogs, messages, formats.
// Text always goes in through textContent; markup is never built from data.

const dataEl = document.getElementById("page-data");
export const PAGE = dataEl ? JSON.parse(dataEl.textContent) : {};
export const FEATURES = PAGE.features || {};
export const ME = PAGE.me || null;
const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

// Readable messages for the API's problem codes (the server's `detail` is used otherwise).
const MESSAGES = {
  name_conflict: "An item with this name already exists here. Choose another name.",
  cycle: "A folder cannot be moved into itself or one of its subfolders.",
  quota_exceeded: "There is not enough room left in the storage quota.",
  too_large: "The file is too large for this server.",
  link_expired: "This link has expired or was revoked.",
  link_password_required: "This link is protected by a password.",
  link_password_invalid: "That password is not right. Try again.",
  rate_limited: "Too many attempts. Wait a minute and try again.",
  checksum_mismatch: "The file changed while it was being uploaded. Try again.",
  csrf_failed: "Your session's security token is stale. Reload the page and try again.",
  storage_unavailable: "Storage is not answering right now; nothing was changed. Try again.",
  database_unavailable: "The server's database is not answering; nothing was changed. Try again.",
  internal_error: "Something went wrong on the server. Try again in a moment.",
};

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

export function problemMessage(status, body) {
  const code = body && body.code;
  if (code && MESSAGES[code]) return MESSAGES[code];
  if (status === 401) return "Your session has ended. Sign in again.";
  if (status === 403) return (body && body.detail) || "You do not have permission to do that.";
  if (status === 404) return "This item does not exist or you no longer have access to it.";
  if (body && typeof body.detail === "string" && body.detail.length < 300) return body.detail;
  if (status >= 500) return MESSAGES.internal_error;
  return "The request failed. Try again.";
}

export async function errorFromResponse(resp) {
  let body = {};
  try {
    const type = resp.headers.get("content-type") || "";
    if (type.includes("json")) body = await resp.json();
  } catch (_) {
    body = {};
  }
  return new ApiError(resp.status, body.code || "error", problemMessage(resp.status, body), body);
}

/** Call the JSON API with the session cookie and the CSRF header. */
export async function api(method, path, { json, body, headers = {}, query, signal } = {}) {
  let url = path.startsWith("/") ? path : `/api/v1/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  const h = { Accept: "application/json", ...headers };
  if (method !== "GET" && method !== "HEAD" && CSRF) h["X-CSRF-Token"] = CSRF;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers: h, body, credentials: "same-origin", signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "The server could not be reached. Check your connection.");
  }
  if (resp.status === 401 && ME) {
    toast("Your session has ended. Sign in again.", "error");
    setTimeout(() => { location.href = "/login?next=" + encodeURIComponent(location.pathname); }, 1500);
  }
  if (!resp.ok) throw await errorFromResponse(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  return type.includes("json") ? resp.json() : resp;
}

/** Every item of a paged list (bounded). */
export async function apiAll(path, query = {}, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await api("GET", path, { query: { ...query, cursor } });
    const list = Array.isArray(page) ? page : page.items || [];
    items.push(...list);
    cursor = Array.isArray(page) ? null : page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** Build an element: h("a", {href, class}, "text", child). Strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function icon(name, label) {
  const attrs = { class: `icon icon-${name}` };
  if (label) Object.assign(attrs, { role: "img", "aria-label": label });
  else attrs["aria-hidden"] = "true";
  return h("span", attrs);
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB", "PB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function formatDate(s) {
  if (!s) return "";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? "" : dateFmt.format(d);
}

export function timeEl(s) {
  return h("time", { datetime: s, title: s }, formatDate(s));
}

/** A short message in the corner; errors stay until dismissed. */
export function toast(message, kind = "info", { action } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const close = h("button", { class: "toast-close", type: "button", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "toast-text" }, message), action || null, close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

export function showError(err, where) {
  const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  if (where) {
    clear(where, h("p", { class: "alert alert-error", role: "alert" }, message));
    where.hidden = false;
  } else {
    toast(message, "error");
  }
}

// ---- dialogs (native <dialog>: focus stays inside, Escape closes) --------------------------

export function openDialog({ title, body, actions = [], wide = false, onClose }) {
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const closeBtn = h("button", { type: "button", class: "icon-button dialog-close", "aria-label": "Close" }, "×");
  const footer = h("div", { class: "dialog-actions" }, ...actions);
  const dlg = h("dialog", { class: wide ? "dialog dialog-wide" : "dialog", "aria-labelledby": titleId },
    h("div", { class: "dialog-head" }, h("h2", { id: titleId }, title), closeBtn),
    h("div", { class: "dialog-body" }, body),
    actions.length ? footer : null);
  closeBtn.addEventListener("click", () => dlg.close());
  dlg.addEventListener("close", () => {
    dlg.remove();
    if (onClose) onClose(dlg.returnValue);
  });
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/** Ask one question with a text field; resolves to the value or null. */
export function promptDialog({ title, label, value = "", submit = "Save", validate }) {
  return new Promise((resolve) => {
    const id = `f-${Math.random().toString(36).slice(2)}`;
    const input = h("input", { id, type: "text", value, required: true, autocomplete: "off" });
    const error = h("p", { class: "field-error", role: "alert", hidden: true });
    let result = null;
    const form = h("form", { class: "form", method: "dialog" },
      h("label", { for: id }, label), input, error,
      h("div", { class: "dialog-actions" },
        h("button", { type: "button", class: "btn btn-ghost", value: "cancel", onclick: () => dlg.close() }, "Cancel"),
        h("button", { type: "submit", class: "btn btn-primary" }, submit)));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      if (validate) {
        const btn = form.querySelector("button[type=submit]");
        btn.disabled = true;
        try {
          await validate(v);
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
          btn.disabled = false;
          input.focus();
          return;
        }
      }
      result = v;
      dlg.close();
    });
    const dlg = openDialog({ title, body: form, onClose: () => resolve(result) });
    input.focus();
    input.select();
  });
}

export function confirmDialog({ title, message, confirm = "OK", danger = false }) {
  return new Promise((resolve) => {
    let ok = false;
    const yes = h("button", { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary" }, confirm);
    const no = h("button", { type: "button", class: "btn btn-ghost" }, "Cancel");
    const dlg = openDialog({ title, body: h("p", {}, message), actions: [no, yes], onClose: () => resolve(ok) });
    yes.addEventListener("click", () => { ok = true; dlg.close(); });
    no.addEventListener("click", () => dlg.close());
    yes.focus();
  });
}

// ---- names for ids (owners, authors, folders) --------------------------------------------

const nameCache = { users: new Map(), folders: new Map(), documents: new Map() };

export async function lookupNames({ users = [], folders = [], documents = [], documentId } = {}) {
  const want = (kind, ids) => [...new Set(ids.filter((i) => i !== null && i !== undefined && !nameCache[kind].has(i)))];
  const q = { users: want("users", users), folders: want("folders", folders), documents: want("documents", documents) };
  if (q.users.length || q.folders.length || q.documents.length) {
    try {
      const res = await api("GET", "/web/names", {
        query: { users: q.users.join(","), folders: q.folders.join(","), documents: q.documents.join(","), document_id: documentId },
      });
      for (const kind of ["users", "folders", "documents"]) {
        for (const id of q[kind]) nameCache[kind].set(id, res[kind][id] ?? null);
      }
    } catch (_) {
      /* names are a nicety: fall back to ids */
    }
  }
}

export function userName(id) {
  if (id === null || id === undefined) return "Someone via a link";
  if (ME && id === ME.id) return "You";
  return nameCache.users.get(id) || `User #${id}`;
}
export function folderName(id) {
  return nameCache.folders.get(id) || null;
}
export function documentName(id) {
  return nameCache.documents.get(id) || null;
}

// ---- quota meter --------------------------------------------------------------------------

export async function refreshQuota() {
  const box = document.getElementById("quota");
  if (!box) return;
  try {
    const me = await api("GET", "users/me");
    const pct = me.quota_bytes ? Math.min(100, (me.used_bytes * 100) / me.quota_bytes) : 100;
    const meter = box.querySelector("progress");
    meter.value = Math.round(pct * 10) / 10;
    box.querySelector(".quota-text").textContent = `${formatBytes(me.used_bytes)} of ${formatBytes(me.quota_bytes)} used`;
    const warn = box.querySelector(".quota-warn");
    box.classList.toggle("quota-full", pct > 90);
    warn.hidden = !(pct > 90);
  } catch (_) {
    /* keep the server-rendered numbers */
  }
}

export function permissionLabel(p) {
  return { OWNER: "Owner", EDIT: "Can edit", COMMENT: "Can comment", VIEW: "Can view" }[p] || p || "";
}

export function levelAtLeast(p, needed) {
  const order = { NONE: 0, VIEW: 1, COMMENT: 2, EDIT: 3, OWNER: 4 };
  return (order[p] || 0) >= (order[needed] || 0);
}

export function unavailable(feature) {
  return h("p", { class: "empty" }, `${feature} is not available on this server yet.`);
}

export function fileKind(name, mime) {
  const lower = (name || "").toLowerCase();
  const ext = lower.includes(".") ? lower.slice(lower.lastIndexOf(".") + 1) : "";
  mime = mime || "";
  if (ext === "md" || ext === "markdown" || mime === "text/markdown") return "markdown";
  if (mime.startsWith("image/") && ["png", "jpg", "jpeg", "gif", "webp", "bmp", "svg"].includes(ext || "png")) return "image";
  if (mime === "application/pdf" || ext === "pdf") return "pdf";
  const textExt = ["txt", "csv", "tsv", "json", "xml", "yaml", "yml", "toml", "ini", "log", "py", "js", "ts", "css", "html", "sh", "c", "h", "go", "rs", "java", "sql", "rst"];
  if (mime.startsWith("text/") || textExt.includes(ext) || mime === "application/json") return "text";
  return "other";
}

document.addEventListener("DOMContentLoaded", () => {
  // Close open <details> menus when clicking elsewhere or pressing Escape.
  document.addEventListener("click", (ev) => {
    for (const d of document.querySelectorAll("details.menu[open]")) if (!d.contains(ev.target)) d.open = false;
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    for (const d of document.querySelectorAll("details.menu[open]")) {
      d.open = false;
      d.querySelector("summary")?.focus();
    }
  });
});
