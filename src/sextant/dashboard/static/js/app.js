// The dashboard shell: hash router, signed-in state, top bar with org/project switcher.
import { api, auth, setSignedOutHandler, signOut } from "./api.js";
import { h, clear, errorBox, loading } from "./util.js";
import { setChartTimeZone } from "./charts.js";
import * as authPages from "./pages/auth.js";
import * as manage from "./pages/manage.js";
import * as overview from "./pages/overview.js";
import * as events from "./pages/events.js";
import * as funnels from "./pages/funnels.js";
import * as retention from "./pages/retention.js";
import * as apiPage from "./pages/api.js";
import * as web3 from "./pages/web3.js";
import * as live from "./pages/live.js";

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");

const PROJECT_PAGES = [
  ["overview", "Overview", overview.render],
  ["events", "Events", events.render],
  ["funnels", "Funnels", funnels.render],
  ["retention", "Retention", retention.render],
  ["api", "API", apiPage.render],
  ["web3", "Web3", web3.render],
  ["live", "Live", live.render],
  ["settings", "Settings", manage.renderProjectSettings],
];

export const state = { me: null, projects: [], cleanup: null };

/** Parse "#/p/<id>/overview?from=-7d" into {parts, params}. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

/** Navigate, keeping (or replacing) the query string. */
export function go(path, params) {
  const q = params ? params.toString() : "";
  const target = "#" + path + (q ? "?" + q : "");
  if (location.hash === target) route();
  else location.hash = target;
}

/** Replace the query string of the current route (date range, filters) and re-render. */
export function setParams(mutator) {
  const { parts, params } = currentRoute();
  mutator(params);
  go("/" + parts.map(encodeURIComponent).join("/"), params);
}

export async function loadAccount() {
  state.me = await api("/api/v1/auth/me");
  const projects = await api("/api/v1/projects");
  state.projects = Array.isArray(projects) ? projects : (projects && projects.items) || [];
}

function orgs() {
  return (state.me && state.me.orgs) || [];
}

function roleIn(orgId) {
  const m = orgs().find((o) => o.org_id === orgId);
  return m ? m.role : null;
}

export function canManage(orgId) {
  return ["owner", "admin"].includes(roleIn(orgId));
}

function renderTopbar(project, page, orgId) {
  topbar.hidden = false;
  const options = [];
  for (const org of orgs()) {
    const mine = state.projects.filter((p) => p.org_id === org.org_id);
    options.push(h("optgroup", { label: org.org_name },
      mine.map((p) => h("option", { value: "p:" + p.id, selected: project && p.id === project.id }, p.name)),
      h("option", { value: "o:" + org.org_id, selected: org.org_id === orgId }, `⚙ ${org.org_name}: members & projects`)));
  }
  options.push(h("option", { value: "new" }, "+ New organisation or project"));
  const select = h("select", {
    "aria-label": "Organisation and project",
    onchange: (e) => {
      const v = e.target.value;
      if (v.startsWith("p:")) go(`/p/${v.slice(2)}/${page && page !== "settings" ? page : "overview"}`, currentRoute().params);
      else if (v.startsWith("o:")) go(`/orgs/${v.slice(2)}`);
      else go("/welcome");
    },
  }, project || orgId ? null : h("option", { value: "", selected: true }, "Choose a project…"), options);
  const nav = project
    ? h("nav", { class: "nav", "aria-label": "Reports" }, PROJECT_PAGES.map(([id, label]) => {
      const keep = ["settings", "live"].includes(id) ? "" : (currentRoute().params.toString() ? "?" + currentRoute().params.toString() : "");
      return h("a", { href: `#/p/${project.id}/${id}${keep}`, "aria-current": id === page ? "page" : null }, label);
    }))
    : h("nav", { class: "nav" });
  clear(topbar, h("div", { class: "topbar-inner" },
    h("a", { class: "brand", href: "#/" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "Sextant"),
    h("div", { class: "switcher" }, select),
    nav,
    h("div", { class: "user-menu" },
      h("span", { class: "who muted" }, state.me ? state.me.email : ""),
      h("button", {
        class: "btn secondary small", type: "button",
        onclick: async () => { await signOut(); state.me = null; go("/login"); },
      }, "Sign out"))));
}

async function route() {
  if (state.cleanup) { try { state.cleanup(); } catch { /* ignore */ } state.cleanup = null; }
  const { parts, params } = currentRoute();
  const [head, id, page = "overview"] = parts;
  const sub = parts.slice(3);
  if (head === "login" || head === "signup") {
    topbar.hidden = true;
    return authPages.render(main, head, { loadAccount, go });
  }
  if (!auth.get()) return go("/login");
  try {
    if (!state.me) { clear(main, loading()); await loadAccount(); }
  } catch (e) {
    if (!auth.get()) return go("/login");
    clear(main, errorBox(e));
    return;
  }
  window.scrollTo(0, 0);
  const ctx = { state, params, go, setParams, reload: async () => { await loadAccount(); route(); }, canManage };
  if (head === "welcome") { renderTopbar(null); return manage.renderWelcome(main, ctx); }
  if (head === "orgs" && id) { renderTopbar(null, null, id); return manage.renderOrg(main, ctx, id); }
  if (head === "p" && id) {
    const project = state.projects.find((p) => p.id === id);
    if (!project) {
      renderTopbar(null);
      clear(main, h("div", { class: "page" }, errorBox(new Error("This project does not exist or you are not a member of its organisation."))));
      return;
    }
    ctx.project = project;
    setChartTimeZone(project.timezone || "UTC");
    ctx.canManage = canManage(project.org_id);
    renderTopbar(project, page);
    const entry = PROJECT_PAGES.find(([pid]) => pid === page);
    if (!entry) return go(`/p/${id}/overview`);
    document.title = `${entry[1]} · ${project.name} · Sextant`;
    clear(main, loading());
    try {
      state.cleanup = (await entry[2](main, ctx, sub)) || null;
    } catch (e) {
      clear(main, h("div", { class: "page" }, errorBox(e)));
    }
    return;
  }
  // Home: the first project, or onboarding when there is none.
  const first = state.projects[0];
  if (first) return go(`/p/${first.id}/overview`);
  return go("/welcome");
}

setSignedOutHandler(() => { state.me = null; if (!location.hash.startsWith("#/login")) go("/login"); });
window.addEventListener("hashchange", route);
route();
