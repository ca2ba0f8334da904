// The header's search box on every page: "/" focuses it (unless typing somewhere already).
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  const box = document.getElementById("search-box");
  if (!box) return;
  ev.preventDefault();
  box.focus();
  box.select();
});
