// The page behind a shared link, for anyone: a document or a browsable folder, with a
// password prompt when the link has one and plain words for expired or revoked links.
import { ApiError, clear, errorFromResponse, fileKind, formatBytes, h, icon, PAGE, timeEl } from "./core.js";
import { renderMarkdown } from "./markdown.js";

const token = PAGE.token;
const base = `/api/v1/links/${encodeURIComponent(token)}`;
const $ = (x) => document.getElementById(x);
let password = null;
let trail = []; // folders opened inside a shared folder: [{id, name}]

async function linkFetch(path, query = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, v);
  const qs = params.toString();
  const headers = { Accept: "application/json" };
  if (password !== null) headers["X-Link-Password"] = password;
  let resp;
  try {
    resp = await fetch(`${base}${path}${qs ? `?${qs}` : ""}`, { headers, credentials: "omit" });
  } catch (_) {
    throw new ApiError(0, "network", "The server could not be reached. Check your connection.");
  }
  if (!resp.ok) throw await errorFromResponse(resp);
  return resp;
}

function showState(title, text, iconName = "link") {
  $("password-form").hidden = true;
  clear($("link-body"), h("div", { class: "empty-state" }, icon(iconName), h("h2", {}, title), h("p", { class: "muted" }, text)));
}

function fail(err) {
  if (err.code === "link_password_required" || err.code === "link_password_invalid") {
    const form = $("password-form");
    form.hidden = false;
    clear($("link-body"));
    const msg = $("password-error");
    msg.hidden = err.code !== "link_password_invalid" && password === null;
    msg.textContent = err.code === "link_password_invalid" ? "That password is not right. Try again." : "";
    const input = $("link-password");
    input.value = "";
    input.focus();
    return;
  }
  if (err.code === "link_expired" || err.status === 410) showState("This link has expired", "The link was revoked or has passed its expiry date. Ask the person who sent it for a new one.", "clock");
  else if (err.status === 404) showState("This link does not exist", "Check that the address is complete, or ask for a new link.");
  else if (err.status === 429) showState("Too many attempts", "Wait a minute, then reload the page to try again.");
  else showState("Something went wrong", err.message);
}

async function download(documentId) {
  const query = { redirect: "false" };
  if (documentId) query.document_id = documentId;
  try {
    if (password === null) {
      // Without a password a plain navigation works, and the browser handles the file.
      const q = documentId ? `?document_id=${encodeURIComponent(documentId)}` : "";
      location.assign(`${base}/download${q}`);
      return;
    }
    const controller = new AbortController();
    const headers = { "X-Link-Password": password, Accept: "application/json" };
    const params = new URLSearchParams(query);
    const resp = await fetch(`${base}/download?${params}`, { headers, credentials: "omit", signal: controller.signal });
    if (!resp.ok) throw await errorFromResponse(resp);
    const type = resp.headers.get("content-type") || "";
    if (!resp.redirected && type.includes("json")) {
      location.assign((await resp.json()).url);
    } else {
      controller.abort(); // the redirect was followed: hand its signed URL to the browser
      location.assign(resp.url);
    }
  } catch (err) {
    if (err.name === "AbortError") return;
    const box = $("link-error");
    box.textContent = err.message;
    box.hidden = false;
  }
}

async function preview(doc, box) {
  const kind = fileKind(doc.name, doc.mime_type);
  const size = doc.current_version ? doc.current_version.size_bytes : 0;
  if (!["text", "markdown", "image"].includes(kind) || size > 5 * 1024 * 1024) return;
  try {
    const signed = await (await linkFetch("/download", { redirect: "false" })).json();
    const resp = await fetch(signed.url, { credentials: "omit" });
    if (!resp.ok) return;
    if (kind === "image") {
      const url = URL.createObjectURL(new Blob([await resp.arrayBuffer()], { type: doc.mime_type }));
      clear(box, h("img", { class: "image-preview", src: url, alt: `Preview of ${doc.name}` }));
    } else {
      const text = new TextDecoder().decode(await resp.arrayBuffer());
      if (kind === "markdown") {
        const article = h("article", { class: "markdown-body" });
        article.innerHTML = renderMarkdown(text); // escaped by the renderer
        clear(box, article);
      } else clear(box, h("pre", { class: "text-preview", tabindex: 0 }, text));
    }
    box.hidden = false;
  } catch (_) {
    /* the preview is optional */
  }
}

function showDocument(out) {
  const doc = out.document;
  const kind = fileKind(doc.name, doc.mime_type);
  const btn = h("button", { type: "button", class: "btn btn-primary", id: "link-download" }, icon("download"), "Download");
  btn.addEventListener("click", () => download(null));
  const previewBox = h("div", { class: "link-preview", hidden: true });
  clear($("link-body"),
    h("div", { class: "link-item" }, icon(kind === "other" ? "file" : kind),
      h("div", {}, h("h2", { id: "link-name" }, doc.name),
        h("p", { class: "muted" }, `${formatBytes(doc.size_bytes)} · updated `, timeEl(doc.updated_at))),
      btn),
    previewBox);
  preview(doc, previewBox);
}

function showFolder(out) {
  const rows = (out.items || []).map((item) => {
    const kind = item.kind === "folder" ? "folder" : fileKind(item.name, item.mime_type);
    let action;
    let name;
    if (item.kind === "folder") {
      name = h("button", { type: "button", class: "link-button item-link", onclick: () => { trail.push({ id: item.id, name: item.name }); open(); } }, item.name);
      action = "";
    } else {
      name = h("span", {}, item.name);
      action = h("button", { type: "button", class: "btn btn-small", "aria-label": `Download ${item.name}`, onclick: () => download(item.id) }, "Download");
    }
    return h("tr", { dataset: { kind: item.kind, id: item.id, name: item.name } },
      h("td", { class: "col-name" }, h("div", { class: "name-cell" }, icon(kind === "other" ? "file" : kind), name)),
      h("td", { class: "col-size" }, item.kind === "folder" ? "—" : formatBytes(item.size_bytes)),
      h("td", { class: "col-date" }, timeEl(item.updated_at)),
      h("td", { class: "col-actions" }, action));
  });
  const crumbs = [h("button", { type: "button", class: "link-button", onclick: () => { trail = []; open(); } }, out.folder && trail.length ? "Shared folder" : (out.folder ? out.folder.name : "Shared folder"))];
  trail.forEach((f, i) => crumbs.push(h("button", { type: "button", class: "link-button", onclick: () => { trail = trail.slice(0, i + 1); open(); } }, f.name)));
  clear($("link-body"),
    h("nav", { class: "breadcrumbs", "aria-label": "Folder" }, h("ol", {}, crumbs.map((c) => h("li", {}, c)))),
    rows.length ? h("table", { class: "listing" }, h("caption", { class: "visually-hidden" }, "Folder contents"),
      h("thead", {}, h("tr", {}, ["Name", "Size", "Modified", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)) : h("p", { class: "empty" }, "This folder is empty."));
}

async function open() {
  $("link-error").hidden = true;
  try {
    const folderId = trail.length ? trail[trail.length - 1].id : undefined;
    const out = await (await linkFetch("", { folder_id: folderId })).json();
    $("password-form").hidden = true;
    $("link-expiry").textContent = out.expires_at ? "This link works until " : "";
    if (out.expires_at) $("link-expiry").append(timeEl(out.expires_at));
    if (out.kind === "document") showDocument(out);
    else showFolder(out);
  } catch (err) {
    fail(err);
  }
}

$("password-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  password = $("link-password").value;
  open();
});
open();
