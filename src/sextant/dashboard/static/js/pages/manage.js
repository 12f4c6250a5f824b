// Organisations, members and roles, projects, project settings, API keys, tracker snippet.
import { api, download } from "../api.js";
import { h, clear, copy, empty, errorBox, formError, loading, toast, when } from "../util.js";

const ROLES = ["owner", "admin", "member", "viewer"];
const ROLE_HELP = {
  owner: "everything, including deleting the organisation",
  admin: "manage members, projects and keys",
  member: "read analytics and see keys",
  viewer: "read analytics only",
};

function timezones() {
  try { return Intl.supportedValuesOf("timeZone"); } catch { return ["UTC"]; }
}
function tzSelect(id, value) {
  const zones = timezones();
  if (!zones.includes("UTC")) zones.unshift("UTC");
  return h("select", { id, name: "timezone" }, zones.map((z) => h("option", { value: z, selected: z === value }, z)));
}
function guessTz() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch { return "UTC"; }
}

/** Write keys are public (they go into web pages), so the dashboard remembers the last one. */
const wkStore = {
  get: (pid) => localStorage.getItem("sextant.wk." + pid),
  set: (pid, secret) => localStorage.setItem("sextant.wk." + pid, secret),
  clear: (pid) => localStorage.removeItem("sextant.wk." + pid),
};

export function snippet(writeKey) {
  return `<script defer src="${location.origin}/t.js" data-key="${writeKey}"></script>`;
}

// --- onboarding --------------------------------------------------------------------------

export async function renderWelcome(main, ctx) {
  document.title = "Get started · Sextant";
  const orgs = ctx.state.me.orgs || [];
  const orgName = h("input", { id: "org-name", required: true, maxlength: 200, placeholder: "Acme Inc." });
  const orgForm = h("form", {
    class: "card",
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const org = await api("/api/v1/orgs", { method: "POST", body: { name: orgName.value } });
        await ctx.reload();
        ctx.go("/welcome", new URLSearchParams({ org: org.id }));
      } catch (err) { formError(orgForm, err); }
    },
  }, h("h2", {}, orgs.length ? "New organisation" : "1. Create your organisation"),
  h("p", { class: "muted small" }, "An organisation holds your team and its projects."),
  h("label", { for: "org-name" }, "Organisation name"),
  h("div", { class: "field-row" }, h("div", { style: { flex: 1 } }, orgName), h("button", { class: "btn", type: "submit" }, "Create organisation")));
  orgName.classList.add("full");

  let projectForm = null;
  if (orgs.length) {
    const preferred = ctx.params.get("org");
    const orgSel = h("select", { id: "project-org" }, orgs.map((o) => h("option", { value: o.org_id, selected: o.org_id === preferred }, o.org_name)));
    const pname = h("input", { id: "project-name", required: true, maxlength: 200, placeholder: "My website", class: "full" });
    const tz = tzSelect("project-tz", guessTz());
    projectForm = h("form", {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const project = await api("/api/v1/projects", { method: "POST", body: { org_id: orgSel.value, name: pname.value, timezone: tz.value } });
          const key = await api(`/api/v1/projects/${project.id}/keys`, { method: "POST", body: { name: "Website", kind: "write" } });
          if (key && key.secret) wkStore.set(project.id, key.secret);
          await ctx.reload();
          ctx.go(`/p/${project.id}/settings`, new URLSearchParams({ new: "1" }));
        } catch (err) { formError(projectForm, err); }
      },
    }, h("h2", {}, "2. Create a project"),
    h("p", { class: "muted small" }, "A project is one site, app or API. We create a write key for it so you can start sending events right away."),
    h("label", { for: "project-org" }, "Organisation"), orgSel,
    h("label", { for: "project-name" }, "Project name"), pname,
    h("label", { for: "project-tz" }, "Reporting time zone"), tz,
    h("div", {}, h("button", { class: "btn", type: "submit", style: { marginTop: "1rem" } }, "Create project")));
  }
  clear(main, h("div", { class: "page", style: { maxWidth: "680px" } },
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, orgs.length ? "Add a project" : "Welcome to Sextant"),
      h("p", { class: "muted" }, orgs.length ? "Projects keep each site's or app's data apart." : "Two steps and you can paste a script tag into your site."))),
    projectForm, orgForm));
  (projectForm ? projectForm.querySelector("#project-name") : orgName).focus();
}

// --- organisation: members and projects --------------------------------------------------------

export async function renderOrg(main, ctx, orgId) {
  const org = (ctx.state.me.orgs || []).find((o) => o.org_id === orgId);
  if (!org) { clear(main, h("div", { class: "page" }, errorBox(new Error("Organisation not found.")))); return; }
  document.title = `${org.org_name} · Sextant`;
  const manageable = ctx.canManage(orgId);
  clear(main, loading());
  let members = [];
  try {
    const res = await api(`/api/v1/orgs/${orgId}/members`);
    members = Array.isArray(res) ? res : (res && res.items) || [];
  } catch (e) { members = null; }
  const projects = ctx.state.projects.filter((p) => p.org_id === orgId);

  const memberRows = (members || []).map((m) => {
    const uid = m.user_id || m.id;
    const roleSel = h("select", {
      "aria-label": `Role of ${m.email}`, disabled: !manageable,
      onchange: async (e) => {
        try {
          await api(`/api/v1/orgs/${orgId}/members/${uid}`, { method: "PATCH", body: { role: e.target.value } });
          toast(`${m.email} is now ${e.target.value}`);
          await ctx.reload();
        } catch (err) { toast(err.message, true); e.target.value = m.role; }
      },
    }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)));
    return h("tr", {}, h("td", {}, m.name || "", h("div", { class: "muted small" }, m.email)), h("td", {}, roleSel),
      h("td", { class: "num" }, manageable ? h("button", {
        class: "btn danger small", type: "button",
        onclick: async () => {
          if (!confirm(`Remove ${m.email} from ${org.org_name}?`)) return;
          try { await api(`/api/v1/orgs/${orgId}/members/${uid}`, { method: "DELETE" }); toast("Member removed"); await ctx.reload(); } catch (err) { toast(err.message, true); }
        },
      }, "Remove") : null));
  });
  const email = h("input", { id: "member-email", type: "email", required: true, placeholder: "teammate@example.com" });
  const role = h("select", { id: "member-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "member" }, r)));
  const addForm = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api(`/api/v1/orgs/${orgId}/members`, { method: "POST", body: { email: email.value, role: role.value } });
        toast(`${email.value} added`);
        await ctx.reload();
      } catch (err) { formError(addForm, err); }
    },
  }, h("h3", { style: { marginTop: "1rem" } }, "Add a member"),
  h("p", { class: "muted small" }, "They need a Sextant account on this server first."),
  h("div", { class: "field-row" },
    h("div", {}, h("label", { for: "member-email" }, "Email"), email),
    h("div", {}, h("label", { for: "member-role" }, "Role"), role),
    h("button", { class: "btn", type: "submit" }, "Add")));

  clear(main, h("div", { class: "page" },
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, org.org_name), h("p", { class: "muted" }, `Your role: ${org.role}`)),
      manageable ? h("a", { class: "btn", href: `#/welcome?org=${orgId}` }, "New project") : null),
    h("section", { class: "card" }, h("h2", {}, "Projects"),
      projects.length
        ? h("ul", { class: "barlist" }, projects.map((p) => h("li", {}, h("a", { href: `#/p/${p.id}/overview` }, p.name), h("span", { class: "muted small" }, p.timezone))))
        : empty("No projects yet", manageable ? "Create one to get a write key and a snippet." : "An owner or admin of this organisation can create one.", manageable ? h("a", { class: "btn", href: `#/welcome?org=${orgId}` }, "Create a project") : null)),
    h("section", { class: "card" }, h("h2", {}, "Members and roles"),
      members === null ? h("p", { class: "muted" }, "You cannot see this organisation's members.") :
        h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Member"), h("th", {}, "Role"), h("th", {}))), h("tbody", {}, memberRows))),
      h("dl", { class: "kv small", style: { marginTop: ".75rem" } }, ROLES.map((r) => [h("dt", {}, r), h("dd", {}, ROLE_HELP[r])])),
      manageable ? addForm : null),
    org.role === "owner" ? h("section", { class: "card" }, h("h2", {}, "Danger zone"),
      h("p", { class: "muted small" }, "Deleting the organisation deletes all of its projects, with all of their events and keys, and its memberships. This cannot be undone."),
      deleteButton(ctx, "Delete organisation", org.org_name,
        `This deletes every project and event of ${org.org_name}. Type the organisation name to delete it.`,
        `/api/v1/orgs/${orgId}`)) : null));
}

/** Run `work` with `button` disabled and saying `busyText`; a failure is a toast. */
async function whileBusy(button, busyText, work) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyText;
  try { await work(); } catch (err) { toast(err.message, true); } finally { button.disabled = false; button.textContent = label; }
}

/** A danger-zone button: deletes `path` once its owner's `name` is typed, then goes home. */
function deleteButton(ctx, label, name, question, path) {
  return h("button", {
    class: "btn danger", type: "button",
    onclick: (e) => {
      if (prompt(question) !== name) return;
      whileBusy(e.currentTarget, "Deleting…", async () => { await api(path, { method: "DELETE" }); await ctx.reload(); ctx.go("/"); });
    },
  }, label);
}

// --- data: bulk export, one person's export and erasure --------------------------------------

function dataCard(p, manageable) {
  const format = h("select", { id: "export-format", "aria-label": "Export format" },
    h("option", { value: "csv" }, "CSV"), h("option", { value: "ndjson" }, "NDJSON"));
  const span = h("select", { id: "export-range", "aria-label": "Export range" },
    [["-7d", "Last 7 days"], ["-30d", "Last 30 days"], ["-90d", "Last 90 days"], ["all", "Everything"]]
      .map(([v, l]) => h("option", { value: v, selected: v === "-30d" }, l)));
  const exportForm = h("form", {
    class: "toolbar",
    onsubmit: (e) => {
      e.preventDefault();
      const button = e.currentTarget.querySelector("button");
      whileBusy(button, "Working…", () => download(`/api/v1/projects/${p.id}/export`, { format: format.value, date_from: span.value },
        `${p.name.replace(/[^A-Za-z0-9_-]+/g, "-")}-events.${format.value}`));
    },
  }, format, span, h("button", { class: "btn secondary small", type: "submit" }, "Download"));
  const who = h("input", { id: "person-id", placeholder: "A user or anonymous id", required: true });
  const personForm = h("form", {
    class: "toolbar", onsubmit: (e) => e.preventDefault(),
  }, who,
  h("button", {
    class: "btn secondary small", type: "button",
    onclick: (e) => {
      if (!who.reportValidity()) return;
      whileBusy(e.currentTarget, "Working…", () => download(`/api/v1/projects/${p.id}/persons/${encodeURIComponent(who.value.trim())}/export`, { format: "ndjson" },
        `person-${who.value.trim().replace(/[^A-Za-z0-9_-]+/g, "-")}.ndjson`));
    },
  }, "Export their data"),
  h("button", {
    class: "btn danger small", type: "button",
    onclick: (e) => {
      if (!who.reportValidity()) return;
      const id = who.value.trim();
      if (!confirm(`Delete every event of ${id} and of every id linked to them? This cannot be undone.`)) return;
      whileBusy(e.currentTarget, "Working…", async () => {
        const res = await api(`/api/v1/projects/${p.id}/persons/${encodeURIComponent(id)}`, { method: "DELETE" });
        toast(`Deleted ${res.events_deleted} events of ${res.distinct_ids.join(", ")}`);
        who.value = "";
      });
    },
  }, "Delete them"));
  return h("section", { class: "card" }, h("h2", {}, "Data"),
    h("p", { class: "muted small" }, "All events of a period, with every column, as a file."), exportForm,
    manageable ? [
      h("h3", { style: { marginTop: "1rem" } }, "One person's data"),
      h("p", { class: "muted small" }, "Everything stored about a person (every id linked to them by identify or alias), to hand to them or to erase."),
      personForm,
    ] : null);
}

// --- project settings, keys, snippet ----------------------------------------------------------

export async function renderProjectSettings(main, ctx, _sub, flash) {
  const p = ctx.project;
  const manageable = ctx.canManage;
  let keys = null;  // (a viewer may not list keys: not asked, rather than a 403)
  const membership = ((ctx.state.me && ctx.state.me.orgs) || []).find((o) => o.org_id === p.org_id);
  if (!membership || membership.role !== "viewer") {
    try {
      const res = await api(`/api/v1/projects/${p.id}/keys`);
      keys = Array.isArray(res) ? res : (res && res.items) || [];
    } catch (e) { keys = null; }
  }

  const page = h("div", { class: "page" });
  const known = wkStore.get(p.id);
  const liveWrite = (keys || []).filter((k) => k.kind === "write" && !k.revoked_at);
  const knownValid = known && liveWrite.some((k) => known.startsWith(k.prefix));
  const snippetBox = h("div");
  const showSnippet = (secret) => {
    const code = snippet(secret);
    clear(snippetBox,
      h("pre", { id: "snippet" }, code),
      h("div", { class: "toolbar" },
        h("button", { class: "btn", type: "button", onclick: () => copy(code) }, "Copy snippet"),
        h("a", { class: "btn secondary", href: `#/p/${p.id}/live` }, "Watch events arrive live")),
      h("p", { class: "muted small" }, "Paste it into the <head> of every page. Page views (including single-page-app navigation) are sent automatically; call ",
        h("code", {}, "sextant.track('Signup', {plan: 'pro'})"), " for custom events and ", h("code", {}, "sextant.identify(userId)"),
        " after sign-in. Add ", h("code", {}, "data-respect-dnt"), " to honour Do Not Track."));
  };
  if (knownValid) showSnippet(known);
  else {
    clear(snippetBox, h("pre", {}, snippet("sx_w_…")),
      manageable ? h("button", {
        class: "btn", type: "button",
        onclick: async () => {
          try {
            const key = await api(`/api/v1/projects/${p.id}/keys`, { method: "POST", body: { name: "Website", kind: "write" } });
            wkStore.set(p.id, key.secret);
            renderProjectSettings(main, ctx);
          } catch (err) { toast(err.message, true); }
        },
      }, "Create a write key for this snippet") : h("p", { class: "muted small" }, "Ask an admin for a write key."));
  }

  // Settings form
  const name = h("input", { id: "p-name", value: p.name, required: true, maxlength: 200, class: "full" });
  const tz = tzSelect("p-tz", p.timezone);
  const retention = h("input", { id: "p-retention", type: "number", min: 1, max: 3650, value: p.retention_days ?? 365 });
  const settingsForm = h("form", {
    class: "card",
    onsubmit: async (e) => {
      e.preventDefault();
      const days = Number(retention.value);
      if (days < (p.retention_days ?? 365) && !confirm(`Events older than ${days} days will be deleted for good at the next retention pass (within the hour). Keep events for ${days} days?`)) return;
      try {
        await api(`/api/v1/projects/${p.id}`, { method: "PATCH", body: { name: name.value, timezone: tz.value, retention_days: days } });
        toast("Project saved");
        await ctx.reload();
      } catch (err) { formError(settingsForm, err); }
    },
  }, h("h2", {}, "Project settings"),
  h("label", { for: "p-name" }, "Name"), name,
  h("div", { class: "field-row" },
    h("div", {}, h("label", { for: "p-tz" }, "Time zone (days and weeks in reports)"), tz),
    h("div", {}, h("label", { for: "p-retention" }, "Keep events for (days)"), retention)),
  manageable ? h("button", { class: "btn", type: "submit", style: { marginTop: "1rem" } }, "Save") : h("p", { class: "muted small" }, "Only owners and admins can change settings."));
  if (!manageable) settingsForm.querySelectorAll("input,select").forEach((el) => { el.disabled = true; });

  // Keys
  const secretBox = h("div");
  const showSecret = (key, verb) => {
    if (key.kind === "write") wkStore.set(p.id, key.secret);
    clear(secretBox, h("div", { class: "secret", role: "alert" },
      h("div", { style: { flexBasis: "100%" } }, h("strong", {}, `${verb} ${key.kind} key “${key.name}”. `), "Copy it now: it will not be shown again."),
      h("code", { id: "new-secret" }, key.secret),
      h("button", { class: "btn small", type: "button", onclick: () => copy(key.secret) }, "Copy")));
  };
  const keyRows = (keys || []).map((k) => {
    const status = k.revoked_at ? h("span", { class: "badge bad" }, "revoked")
      : k.expires_at && new Date(k.expires_at) < new Date() ? h("span", { class: "badge bad" }, "expired")
        : h("span", { class: "badge ok" }, "active");
    return h("tr", {},
      h("td", {}, k.name, h("div", { class: "muted small mono" }, `${k.prefix}…`)),
      h("td", {}, h("span", { class: "badge accent" }, k.kind)),
      h("td", {}, status),
      h("td", { class: "small" }, when(k.created_at)),
      h("td", { class: "small" }, k.last_used_at ? when(k.last_used_at) : h("span", { class: "muted" }, "never")),
      h("td", { class: "small" }, k.expires_at ? when(k.expires_at) : h("span", { class: "muted" }, "never")),
      h("td", { class: "num" }, manageable && !k.revoked_at ? [
        h("button", {
          class: "btn secondary small", type: "button",
          onclick: async () => {
            if (!confirm(`Rotate “${k.name}”? The current secret stops working immediately.`)) return;
            try {
              const res = await api(`/api/v1/projects/${p.id}/keys/${k.id}/rotate`, { method: "POST" });
              await renderProjectSettings(main, ctx, null, { key: res, verb: "Rotated" });
            } catch (err) { toast(err.message, true); }
          },
        }, "Rotate"), " ",
        h("button", {
          class: "btn danger small", type: "button",
          onclick: async () => {
            if (!confirm(`Revoke “${k.name}”? Anything using it stops working immediately.`)) return;
            try {
              await api(`/api/v1/projects/${p.id}/keys/${k.id}/revoke`, { method: "POST" });
              if (known && known.startsWith(k.prefix)) wkStore.clear(p.id);
              toast("Key revoked");
              await renderProjectSettings(main, ctx);
            } catch (err) { toast(err.message, true); }
          },
        }, "Revoke")] : null));
  });
  const keyName = h("input", { id: "key-name", required: true, maxlength: 200, placeholder: "Production website" });
  const keyKind = h("select", { id: "key-kind" }, h("option", { value: "write" }, "write (send events)"), h("option", { value: "read" }, "read (query analytics)"));
  const keyExpiry = h("input", { id: "key-expiry", type: "date" });
  const keyForm = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const body = { name: keyName.value, kind: keyKind.value };
        if (keyExpiry.value) body.expires_at = new Date(keyExpiry.value + "T23:59:59").toISOString();
        const key = await api(`/api/v1/projects/${p.id}/keys`, { method: "POST", body });
        await renderProjectSettings(main, ctx, null, { key, verb: "Created" });
      } catch (err) { formError(keyForm, err); }
    },
  }, h("h3", { style: { marginTop: "1rem" } }, "Create a key"),
  h("div", { class: "field-row" },
    h("div", {}, h("label", { for: "key-name" }, "Name"), keyName),
    h("div", {}, h("label", { for: "key-kind" }, "Kind"), keyKind),
    h("div", {}, h("label", { for: "key-expiry" }, "Expires (optional)"), keyExpiry),
    h("button", { class: "btn", type: "submit" }, "Create key")));

  const isNew = ctx.params.get("new") === "1";
  clear(page,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, p.name), h("p", { class: "muted" }, "Settings, API keys and the tracking snippet"))),
    h("section", { class: "card" }, h("h2", {}, isNew ? "Your project is ready: add this to your site" : "Tracking snippet"), snippetBox),
    settingsForm,
    h("section", { class: "card" }, h("h2", {}, "API keys"),
      h("p", { class: "muted small" }, "Write keys only send events and are safe to embed in web pages. Read keys query analytics: keep them secret."),
      secretBox,
      keys === null ? h("p", { class: "muted" }, "You cannot see this project's keys.")
        : keys.length ? h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Kind", "Status", "Created", "Last used", "Expires", ""].map((t) => h("th", {}, t)))), h("tbody", {}, keyRows)))
          : h("p", { class: "muted" }, "No keys yet."),
      manageable ? keyForm : null),
    dataCard(p, manageable),
    manageable ? h("section", { class: "card" }, h("h2", {}, "Danger zone"),
      h("p", { class: "muted small" }, "Deleting the project deletes all of its events, its settings and its keys. This cannot be undone."),
      deleteButton(ctx, "Delete project", p.name,
        `This deletes every event of ${p.name}. Type the project name to delete it.`,
        `/api/v1/projects/${p.id}`)) : null);
  clear(main, page);
  if (flash && flash.key && flash.key.secret) {
    showSecret(flash.key, flash.verb);
    secretBox.scrollIntoView({ block: "center" });
  }
}
