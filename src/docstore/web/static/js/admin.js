// The admin console: Users, Plans, Storage, Audit. Everything goes through /api/v1/admin/...
// (the endpoints `docstore admin` uses), with the session cookie and the page's CSRF token.
import {
  api, clear, confirmDialog, formatBytes, h, ME, openDialog, PAGE, showError, timeEl, toast,
} from "./core.js";

const $ = (x) => document.getElementById(x);
const GiB = 1024 ** 3;

function table(headers, rows, caption) {
  return h("table", { class: "listing" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

function gib(bytes) {
  const v = bytes / GiB;
  return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/0+$/, "");
}

async function plans() {
  return api("GET", "admin/plans");
}

// ---- users ----------------------------------------------------------------------------------

function usersPage() {
  const box = $("users");
  const more = $("more-users");
  let query = "";
  let cursor = null;
  let planNames = [];
  let rows = [];

  function statusBadge(u) {
    return h("span", { class: u.is_active ? "badge badge-current" : "badge badge-disabled" },
      u.is_active ? "Active" : "Disabled");
  }

  function userRow(u) {
    const plan = h("select", { class: "select", "aria-label": `Plan of ${u.email}` },
      planNames.map((p) => h("option", { value: p, selected: p === u.plan }, p)));
    plan.addEventListener("change", async () => {
      try {
        const changed = await api("PATCH", `admin/users/${u.id}`, { json: { plan: plan.value } });
        toast(`${u.email} is now on plan ${changed.plan}.`, "success");
        replace(u, { ...u, ...changed });
      } catch (err) {
        plan.value = u.plan;
        showError(err);
      }
    });
    const toggle = h("button", { type: "button", class: u.is_active ? "btn btn-small btn-danger" : "btn btn-small" },
      u.is_active ? "Disable" : "Enable");
    toggle.addEventListener("click", async () => {
      if (u.is_active) {
        const ok = await confirmDialog({
          title: `Disable ${u.email}?`,
          message: "They are signed out everywhere at once and cannot sign in until enabled again. Their files stay.",
          confirm: "Disable", danger: true,
        });
        if (!ok) return;
      }
      try {
        const changed = await api("POST", `admin/users/${u.id}/${u.is_active ? "disable" : "enable"}`);
        toast(`${u.email} is ${changed.is_active ? "enabled" : "disabled"}.`, "success");
        replace(u, changed);
      } catch (err) {
        showError(err);
      }
    });
    const quota = h("button", { type: "button", class: "btn btn-small btn-ghost" }, "Quota");
    quota.addEventListener("click", () => quotaDialog(u));
    const reset = h("button", { type: "button", class: "btn btn-small btn-ghost" }, "Reset password");
    reset.addEventListener("click", async () => {
      const ok = await confirmDialog({
        title: `Reset the password of ${u.email}?`,
        message: "They are mailed a single-use link (30 minutes) to choose a new password. Their current password keeps working until they use it.",
        confirm: "Send the link",
      });
      if (!ok) return;
      try {
        await api("POST", `admin/users/${u.id}/password-reset`);
        toast(`A password-reset link was mailed to ${u.email}.`, "success");
      } catch (err) {
        showError(err);
      }
    });
    const usage = h("span", {}, `${formatBytes(u.used_bytes)} of ${formatBytes(u.quota_bytes)}`,
      u.reserved_bytes ? h("span", { class: "hint" }, ` (+${formatBytes(u.reserved_bytes)} reserved)`) : null);
    return h("tr", { dataset: { email: u.email, id: u.id } },
      h("td", {}, h("div", {}, u.email), h("div", { class: "hint" }, u.name)),
      h("td", {}, plan),
      h("td", {}, usage),
      h("td", {}, statusBadge(u),
        h("span", { class: u.email_verified ? "badge" : "badge badge-disabled" }, u.email_verified ? "Verified" : "Unverified"),
        u.is_admin ? h("span", { class: "badge badge-owner" }, "Admin") : null),
      h("td", { class: "col-actions" }, h("div", { class: "button-row" }, quota, reset, ME && ME.id === u.id ? null : toggle)));
  }

  function quotaDialog(u) {
    const input = h("input", { type: "number", id: "quota-gib", min: "0", step: "any", value: gib(u.quota_bytes) });
    const save = h("button", { type: "button", class: "btn btn-primary" }, "Save");
    const cancel = h("button", { type: "button", class: "btn btn-ghost" }, "Cancel");
    const error = h("div", { hidden: true });
    const dlg = openDialog({
      title: `Quota of ${u.email}`,
      body: h("div", { class: "form" }, h("label", { for: "quota-gib" }, "Quota (GiB)"), input, error),
      actions: [cancel, save],
    });
    cancel.addEventListener("click", () => dlg.close());
    save.addEventListener("click", async () => {
      try {
        const bytes = Math.round(Number(input.value) * GiB);
        const changed = await api("PATCH", `admin/users/${u.id}`, { json: { quota_bytes: bytes } });
        replace(u, changed);
        dlg.close();
        toast(`Quota of ${u.email} set to ${formatBytes(changed.quota_bytes)}.`, "success");
      } catch (err) {
        showError(err, error);
      }
    });
  }

  function replace(old, fresh) {
    const i = rows.findIndex((r) => r.id === old.id);
    if (i >= 0) rows[i] = { ...rows[i], ...fresh };
    render();
  }

  function render() {
    if (!rows.length) {
      clear(box, h("div", { class: "empty-state" }, h("p", {}, query ? `No user matches “${query}”.` : "No users yet.")));
      return;
    }
    clear(box, h("div", { class: "table-scroll" },
      table(["User", "Plan", "Storage used", "Status", ""], rows.map(userRow), "Users")));
  }

  let loading = 0;
  async function load(reset) {
    const mine = ++loading; // a newer search wins over an answer still on its way
    try {
      const page = await api("GET", "admin/users", { query: { q: query, limit: 50, cursor: reset ? null : cursor } });
      if (mine !== loading) return;
      if (reset) rows = [];
      rows.push(...page.items);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      render();
    } catch (err) {
      showError(err, box);
    }
  }

  $("user-search").addEventListener("submit", (e) => {
    e.preventDefault();
    query = $("user-q").value.trim();
    load(true);
  });
  more.addEventListener("click", () => load(false));

  const form = $("create-user");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = $("create-user-error");
    error.hidden = true;
    const body = {
      email: $("new-email").value.trim(),
      name: $("new-name").value.trim(),
      password: $("new-password").value,
      plan: $("new-plan").value || undefined,
      is_admin: $("new-admin").checked,
      email_verified: $("new-verified").checked,
    };
    try {
      const made = await api("POST", "admin/users", { json: body });
      form.reset();
      toast(`${made.email} was created.`, "success");
      query = made.email;
      $("user-q").value = made.email;
      await load(true);
    } catch (err) {
      showError(err, error);
    }
  });

  (async () => {
    try {
      planNames = (await plans()).map((p) => p.name);
      clear($("new-plan"), planNames.map((p) => h("option", { value: p, selected: p === "free" }, p)));
    } catch (err) {
      showError(err);
    }
    await load(true);
  })();
}

// ---- plans ----------------------------------------------------------------------------------

function plansPage() {
  const box = $("plans");
  const form = $("plan-form");

  function edit(p) {
    $("plan-name").value = p.name;
    $("plan-quota").value = gib(p.quota_bytes);
    $("plan-versions").value = p.max_versions;
    $("plan-days").value = p.retention_days;
    $("plan-quota").focus();
  }

  async function load() {
    try {
      const items = await plans();
      clear(box, table(["Plan", "Quota", "Versions kept", "Retention", ""], items.map((p) => {
        const btn = h("button", { type: "button", class: "btn btn-small btn-ghost", "aria-label": `Edit ${p.name}` }, "Edit");
        btn.addEventListener("click", () => edit(p));
        return h("tr", { dataset: { name: p.name } },
          h("td", {}, p.name), h("td", {}, formatBytes(p.quota_bytes)), h("td", {}, String(p.max_versions)),
          h("td", {}, `${p.retention_days} days`), h("td", { class: "col-actions" }, btn));
      }), "Plans"));
    } catch (err) {
      showError(err, box);
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = $("plan-error");
    error.hidden = true;
    const name = $("plan-name").value.trim();
    const body = {
      quota_bytes: Math.round(Number($("plan-quota").value) * GiB),
      max_versions: Number($("plan-versions").value),
      retention_days: Number($("plan-days").value),
    };
    try {
      await api("PUT", `admin/plans/${encodeURIComponent(name)}`, { json: body });
      toast(`Plan ${name} saved.`, "success");
      form.reset();
      await load();
    } catch (err) {
      showError(err, error);
    }
  });
  load();
}

// ---- storage --------------------------------------------------------------------------------

const JOB_LABELS = {
  "retention.versions": "Version retention",
  "blobs.gc": "Blob garbage collection",
  fsck: "Consistency check (fsck)",
  "audit.verify": "Audit chain verification",
};

function summaryText(run) {
  const s = run.summary || {};
  if (run.name === "retention.versions") return `${s.versions_deleted ?? 0} versions deleted, ${formatBytes(s.bytes_released ?? 0)} released`;
  if (run.name === "fsck") return s.ok ? "clean" : `${s.errors ?? "some"} problem(s)`;
  if (run.name === "audit.verify") return s.ok ? `${s.checked} entries intact` : `broken at #${s.first_broken_id}`;
  if (s.error) return `error: ${s.error}`;
  return Object.entries(s).filter(([k, v]) => k !== "ok" && typeof v === "number").map(([k, v]) => `${k.replaceAll("_", " ")}: ${v}`).join(", ");
}

function stat(label, value, note, id) {
  return h("div", { class: "card stat", dataset: { stat: id } },
    h("p", { class: "stat-label" }, label), h("p", { class: "stat-value" }, value), note ? h("p", { class: "hint" }, note) : null);
}

function storagePage() {
  async function load() {
    try {
      const s = await api("GET", "admin/storage");
      clear($("storage-totals"),
        stat("Logical size", formatBytes(s.logical_bytes), `${s.versions} versions of ${s.documents} documents`, "logical"),
        stat("Stored", formatBytes(s.stored_bytes), "distinct blobs", "stored"),
        stat("Saved by deduplication", formatBytes(s.dedup_saved_bytes), null, "dedup"),
        stat("Pending GC", formatBytes(s.pending_gc.bytes),
          `${s.pending_gc.count} blobs, ${s.pending_gc_due.count} past the grace period`, "pending-gc"));
      const states = Object.entries(s.blobs);
      clear($("blob-states"), states.length
        ? table(["State", "Blobs", "Size"], states.map(([state, b]) => h("tr", { dataset: { state } },
          h("td", {}, state), h("td", {}, String(b.count)), h("td", {}, formatBytes(b.bytes)))), "Blobs by state")
        : h("p", { class: "muted pad" }, "No blobs stored yet."));
      clear($("job-runs"), table(["Job", "Last finished", "Result", "Summary"],
        Object.entries(s.last_runs).map(([name, run]) => h("tr", { dataset: { job: name } },
          h("td", {}, JOB_LABELS[name] || name),
          h("td", {}, run ? timeEl(run.finished_at) : "never"),
          h("td", {}, run ? h("span", { class: run.ok ? "badge badge-current" : "badge badge-disabled" }, run.ok ? "OK" : "Failed") : ""),
          h("td", {}, run ? summaryText(run) : ""))), "Last job runs"));
    } catch (err) {
      showError(err, $("storage-totals"));
    }
  }

  $("refresh-storage").addEventListener("click", load);
  $("retention-dry-run").addEventListener("click", async () => {
    const box = $("retention-result");
    clear(box, h("p", { class: "muted" }, "Running…"));
    try {
      const [dry, preview] = await Promise.all([
        api("POST", "admin/retention/run", { query: { dry_run: "true" } }),
        api("GET", "admin/retention/preview", { query: { limit: 200 } }),
      ]);
      const head = h("p", { class: "retention-summary" },
        `Would delete ${dry.versions_deleted} versions of ${dry.documents} documents: ${formatBytes(dry.bytes_released)} of quota, `
        + `${formatBytes(dry.storage_bytes_freed)} of storage (${dry.blobs_deleted} blobs).`);
      if (!preview.items.length) {
        clear(box, head, h("p", { class: "muted" }, "Nothing to delete."));
        return;
      }
      clear(box, head, table(["Document", "Version", "Size", "Owner", "Created"], preview.items.map((v) =>
        h("tr", { dataset: { version: v.version_id } },
          h("td", {}, v.document_name), h("td", {}, `v${v.version_number}`), h("td", {}, formatBytes(v.size_bytes)),
          h("td", {}, v.owner_email), h("td", {}, timeEl(v.created_at)))), "Versions retention would delete"),
        preview.truncated ? h("p", { class: "hint" }, `Only the first ${preview.items.length} are listed.`) : null);
    } catch (err) {
      showError(err, box);
    }
  });
  load();
}

// ---- audit ----------------------------------------------------------------------------------

function auditPage() {
  const box = $("audit-status");

  function show(run) {
    if (!run) {
      clear(box, h("p", { class: "muted" }, "The chain has not been verified yet."));
      return;
    }
    const s = run.summary || {};
    const verdict = run.ok
      ? h("p", { class: "audit-verdict" }, h("span", { class: "badge badge-current" }, "Intact"),
        ` ${s.checked ?? 0} entries verified, ${s.pending ?? 0} not sealed yet.`)
      : h("p", { class: "audit-verdict alert alert-error", role: "alert" }, h("strong", {}, "Broken: "),
        s.reason || s.error || "verification failed", s.first_broken_id ? ` (entry #${s.first_broken_id})` : "");
    clear(box, verdict,
      h("p", { class: "hint" }, "Last verified ", timeEl(run.finished_at),
        s.head_id ? `; head #${s.head_id} seal ${s.head_seal}` : ""));
  }

  async function load() {
    try {
      show((await api("GET", "admin/audit/status")).last_verification);
    } catch (err) {
      showError(err, box);
    }
  }

  $("audit-verify").addEventListener("click", async () => {
    clear(box, h("p", { class: "muted" }, "Verifying…"));
    try {
      await api("POST", "admin/audit/verify");
    } catch (err) {
      showError(err, box);
      return;
    }
    await load();
  });
  load();
}

const PAGES = {
  "admin-users": usersPage,
  "admin-plans": plansPage,
  "admin-storage": storagePage,
  "admin-audit": auditPage,
};
(PAGES[PAGE.page] || (() => {}))();
