// A small, safe Markdown renderer: every character of the source is HTML-escaped first, then
// a fixed set of tags is added (headings, paragraphs, emphasis, code, lists, quotes, rules,
// links to http(s)/mailto/relative targets only). Raw HTML in the source shows as text.

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function unescapeHtml(s) {
  const chars = { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" };
  return s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e) => chars[e]);
}

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

// The link target as the browser will read it, or null. Parsed by the URL parser itself, not
// matched with a pattern: it drops leading C0 controls and spaces, tabs and newlines inside,
// so "\u0001javascript:" is javascript: to it (and to us). Relative targets resolve to this
// page's http(s) origin and stay allowed.
function safeHref(escaped) {
  let url;
  try {
    url = new URL(unescapeHtml(escaped), location.href);
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? escapeHtml(url.href) : null;
}

function inline(text) {
  // Code spans first, kept aside so nothing inside them is formatted.
  const codes = [];
  let s = escapeHtml(text).replace(/`([^`]+)`/g, (_, c) => {
    codes.push(`<code>${c}</code>`);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = s.replace(/!?\[([^\]]*)\]\(([^)\s]+)\)/g, (_, label, url) => {
    const href = safeHref(url);
    if (href === null) return label;
    return `<a href="${href}" rel="noopener noreferrer nofollow" target="_blank">${label || href}</a>`;
  });
  s = s.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_]+)__/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>").replace(/(^|[^\w])_([^_\s][^_]*)_(?!\w)/g, "$1<em>$2</em>");
  s = s.replace(/~~([^~]+)~~/g, "<del>$1</del>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]);
}

export function renderMarkdown(source) {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0;
  const para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${inline(para.join(" "))}</p>`);
    para.length = 0;
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(/^\s*(```|~~~)/))) {
      flush();
      const fence = m[1];
      const code = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) code.push(lines[i++]);
      i++;
      out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
      continue;
    }
    if ((m = line.match(/^(#{1,6})\s+(.*?)\s*#*\s*$/))) {
      flush();
      out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush();
      out.push("<hr>");
    } else if (/^\s*>/.test(line)) {
      flush();
      const quote = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quote.push(lines[i++].replace(/^\s*>\s?/, ""));
      out.push(`<blockquote>${renderMarkdown(quote.join("\n"))}</blockquote>`);
      continue;
    } else if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      flush();
      const ordered = /^\s*\d+[.)]\s+/.test(line);
      const items = [];
      const re = ordered ? /^\s*\d+[.)]\s+(.*)$/ : /^\s*[-*+]\s+(.*)$/;
      while (i < lines.length && re.test(lines[i])) {
        let item = lines[i].match(re)[1];
        const task = item.match(/^\[([ xX])\]\s+(.*)$/);
        if (task) item = `${task[1] === " " ? "☐" : "☑"} ${task[2]}`;
        items.push(`<li>${inline(item)}</li>`);
        i++;
      }
      out.push(ordered ? `<ol>${items.join("")}</ol>` : `<ul>${items.join("")}</ul>`);
      continue;
    } else if (line.trim() === "") {
      flush();
    } else {
      para.push(line.trim());
    }
    i++;
  }
  flush();
  return out.join("\n");
}
