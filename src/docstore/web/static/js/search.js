// The search results page: GET /api/v1/search with the page's query and filters, results
// with their snippets, "More results" by cursor, and keyboard navigation (↑ ↓, Enter).
import { api, clear, fileKind, formatBytes, h, icon, permissionLabel, showError, timeEl } from "./core.js";

const box = document.getElementById("content");
const params = new URLSearchParams(location.search);
const FILTERS = ["kind", "owner", "modified_after", "mime"];

/** The server's snippet (HTML: <mark> around matches, everything else escaped) as nodes,
 * without ever parsing it as markup. */
function snippetNodes(snippet) {
  const text = (s) => { const t = document.createElement("textarea"); t.innerHTML = s; return t.value; };
  const out = [];
  for (const part of snippet.split(/(<mark>[\s\S]*?<\/mark>)/)) {
    if (!part) continue;
    if (part.startsWith("<mark>")) out.push(h("mark", {}, text(part.slice(6, -7))));
    else out.push(text(part));
  }
  return out;
}

function hitEl(hit) {
  const href = hit.kind === "folder" ? `/folders/${hit.id}` : `/documents/${hit.id}`;
  const kind = hit.kind === "folder" ? "folder" : fileKind(hit.name, hit.mime_type);
  const meta = [hit.path];
  if (hit.kind === "document") meta.push(formatBytes(hit.size_bytes || 0));
  return h("li", { class: "search-hit", dataset: { kind: hit.kind, id: hit.id } },
    h("div", { class: "name-cell" }, icon(kind === "other" ? "file" : kind),
      h("a", { href, class: "item-link hit-link" }, hit.name),
      h("span", { class: "badge" }, permissionLabel(hit.permission))),
    h("div", { class: "hit-path" }, meta.join(" · "), " · ", timeEl(hit.updated_at)),
    h("p", { class: "hit-snippet" }, snippetNodes(hit.snippet || "")));
}

async function load(list, cursor) {
  const query = { q: params.get("q"), limit: 25, cursor };
  for (const f of FILTERS) query[f] = params.get(f) || undefined;
  if (query.modified_after) query.modified_after = `${query.modified_after}T00:00:00Z`;
  const page = await api("GET", "search", { query });
  list.append(...page.items.map(hitEl));
  document.getElementById("more-results")?.remove();
  if (page.next_cursor) {
    const more = h("button", { type: "button", id: "more-results", class: "btn btn-ghost" }, "More results");
    more.addEventListener("click", () => load(list, page.next_cursor).catch((e) => showError(e, "Search")));
    box.append(more);
  }
  return page.items.length;
}

function keyboard(list) {
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    if (ev.target instanceof HTMLSelectElement) return;
    const links = [...list.querySelectorAll(".hit-link")];
    if (!links.length) return;
    const at = links.indexOf(document.activeElement);
    const next = ev.key === "ArrowDown" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
    ev.preventDefault();
    links[next].focus();
  });
}

async function main() {
  const form = document.getElementById("search-filters");
  for (const f of FILTERS) {
    const el = form?.elements.namedItem(f);
    if (el && params.get(f)) el.value = params.get(f);
  }
  if (!params.get("q")) return;
  const list = h("ol", { class: "search-results", "aria-label": "Search results" });
  clear(box, list);
  keyboard(list);
  try {
    if (!(await load(list))) clear(box, h("div", { class: "empty-state" }, icon("file"), h("p", {}, "Nothing found."),
      h("p", { class: "muted" }, "Try fewer words, a prefix like repo*, or other filters.")));
  } catch (err) {
    clear(box, h("p", { class: "pad error", role: "alert" }, err.message));
  }
}

main();
