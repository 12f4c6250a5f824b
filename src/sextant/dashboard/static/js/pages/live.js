// Live: visitors in the last 5 minutes and a stream of incoming events (Server-Sent Events).
import { stream } from "../api.js";
import { h, clear, num } from "../util.js";
import { stats } from "./common.js";

const MAX_ROWS = 200;

export async function render(main, ctx) {
  const count = h("div", { class: "live-count", "aria-live": "polite" }, "–");
  const status = h("span", { class: "muted small" }, "connecting…");
  const received = h("span", { class: "badge accent" }, "0 events since you opened this page");
  const list = h("ul", { class: "stream", "aria-label": "Incoming events" });
  const placeholder = h("li", { class: "muted" }, "Waiting for events… Open your site in another tab, or send one with curl.");
  list.append(placeholder);
  const topPages = h("div");
  clear(main, h("div", { class: "page" },
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Live"), h("p", { class: "muted small", style: { margin: 0 } }, "Events as they arrive"))),
    h("div", { class: "grid grid-2" },
      h("section", { class: "card" }, h("div", { class: "stat-label" }, h("span", { class: "pulse" }), "Visitors in the last 5 minutes"), count, h("div", { style: { marginTop: ".5rem" } }, received, " ", status)),
      h("section", { class: "card" }, h("h2", {}, "Active pages"), topPages)),
    h("section", { class: "card" }, h("h2", {}, "Stream"), list)));

  let n = 0;
  const refresh = async () => {
    try {
      const r = await stats(ctx, "stats/realtime");
      count.textContent = num(r.visitors ?? (r.totals && r.totals.visitors) ?? 0);
      const pages = r.pages || [];
      clear(topPages, pages.length ? h("ul", { class: "barlist" }, pages.map((p) => h("li", {}, h("span", {}, p.path || "/"), h("span", { class: "val" }, num(p.visitors ?? p.views))))) : h("p", { class: "muted small" }, "No page views in the last 5 minutes."));
    } catch (e) { status.textContent = e.message; }
  };
  await refresh();
  const timer = setInterval(refresh, 10000);
  const stop = stream(`/api/v1/projects/${ctx.project.id}/live`, null, (type, data) => {
    const items = Array.isArray(data) ? data : data && Array.isArray(data.events) ? data.events : [data];
    for (const e of items) {
      if (!e || typeof e !== "object" || !e.event) continue;
      if (!e.replayed) n += 1; // replayed: received just before the page opened
      placeholder.remove();
      const t = new Date(e.timestamp || Date.now());
      list.prepend(h("li", {}, h("span", { class: "t" }, t.toLocaleTimeString()),
        h("strong", {}, e.event), h("span", { class: "muted" }, [e.path, e.country, e.browser !== "Other" && e.browser].filter(Boolean).join(" · ")),
        h("span", { class: "muted mono small", style: { marginLeft: "auto" } }, (e.distinct_id || "").slice(0, 12))));
      while (list.children.length > MAX_ROWS) list.lastChild.remove();
    }
    received.textContent = `${num(n)} event${n === 1 ? "" : "s"} since you opened this page`;
  }, (state) => { status.textContent = state === "open" ? "connected" : "reconnecting…"; });
  return () => { clearInterval(timer); stop(); };
}
