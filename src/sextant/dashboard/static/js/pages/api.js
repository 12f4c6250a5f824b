// API monitoring: requests, error rate, latency percentiles over time, a sortable endpoints table.
import { lineChart } from "../charts.js";
import { h, clear, empty, errorBox, loading, ms, num, pct } from "../util.js";
import { addFilter, controls, intervalFor, query, rangeBody } from "./common.js";
import { apiOf } from "./shapes.js";

const COLUMNS = [
  ["route", "Endpoint", false],
  ["count", "Requests", true],
  ["error_rate", "Errors", true],
  ["p50", "p50", true],
  ["p95", "p95", true],
  ["p99", "p99", true],
  ["max", "Max", true],
];

export async function render(main, ctx) {
  const { range, head, chips } = controls(ctx, { compare: false, title: "API", subtitle: "Requests recorded by the SDK middleware or sent as api events" });
  const interval = intervalFor(range);
  const sort = ctx.params.get("sort") || "count";
  const page = h("div", { class: "page" }, head, chips, loading());
  clear(main, page);
  let res;
  try {
    res = await query(ctx, { kind: "api_metrics", ...rangeBody(range), interval, sort, limit: 100 });
  } catch (e) { clear(page, head, chips, errorBox(e)); return; }
  const data = apiOf(res);
  const s = data.summary;
  if (!Number(s.request_count)) {
    clear(page, head, chips, empty("No API requests recorded yet",
      "Add SextantMiddleware to your FastAPI or Starlette app (pip install sextant; app.add_middleware(SextantMiddleware, client=Client(write_key, host))) or send events with type \"api\".",
      h("a", { class: "btn", href: `#/p/${ctx.project.id}/settings` }, "Get a write key")));
    return;
  }
  const card = (label, value, fmt) => h("div", { class: "stat" },
    h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, fmt(value)));
  const cards = h("div", { class: "stats" },
    card("Requests", s.request_count, num),
    card("Requests / min", s.requests_per_minute, num),
    card("Error rate (4xx+5xx)", s.error_rate, pct),
    card("5xx rate", s.server_error_rate, pct),
    card("p50", s.p50, ms),
    card("p95", s.p95, ms),
    card("p99", s.p99, ms));

  const ts = data.series;
  const charts = h("div", { class: "grid grid-2" },
    h("section", { class: "card" }, h("h2", {}, "Requests"), lineChart({ labels: ts.labels, values: ts.count, interval, name: "requests" })),
    h("section", { class: "card" }, h("h2", {}, "Error rate"), lineChart({ labels: ts.labels, values: ts.error_rate, interval, name: "error rate", format: pct })));
  const latency = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Latency"),
    h("div", { class: "tabs", role: "tablist" })), h("div"));
  const tabs = latency.querySelector(".tabs");
  const showLatency = (key) => {
    tabs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", b.dataset.key === key ? "true" : "false"));
    clear(latency.lastChild, lineChart({ labels: ts.labels, values: ts[key], interval, name: key, format: ms }));
  };
  for (const key of ["p50", "p95", "p99"]) tabs.append(h("button", { type: "button", role: "tab", "data-key": key, onclick: () => showLatency(key) }, key));
  showLatency("p95");

  const sorted = [...data.endpoints];
  const dir = ctx.params.get("dir") === "asc" ? 1 : -1;
  const keyOf = (e, k) => (k === "route" ? `${e.route} ${e.method}` : Number(e[k]) || 0);
  sorted.sort((a, b) => {
    const x = keyOf(a, sort); const y = keyOf(b, sort);
    return (x < y ? -1 : x > y ? 1 : 0) * (sort === "route" ? -dir : dir);
  });
  // The order the rows are in (routes read A to Z by default, numbers largest first).
  const ascending = (sort === "route" ? -dir : dir) > 0;
  const table = h("section", { class: "card" }, h("h2", {}, "Endpoints"), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, COLUMNS.map(([key, label, numeric]) => h("th", { class: numeric ? "num" : null, "aria-sort": key === sort ? (ascending ? "ascending" : "descending") : null },
      h("button", {
        class: "sort", type: "button",
        onclick: () => ctx.setParams((p) => { p.set("dir", key === sort && dir < 0 ? "asc" : "desc"); p.set("sort", key); }),
      }, label, key === sort ? (ascending ? " ↑" : " ↓") : ""))))),
    h("tbody", {}, sorted.map((e) => h("tr", { class: "clickable", tabindex: 0, title: "Filter by this route",
      onclick: () => addFilter(ctx, "http_route", e.route),
      onkeydown: (ev) => { if (ev.key === "Enter") addFilter(ctx, "http_route", e.route); } },
    h("td", { class: "mono" }, h("span", { class: "badge" }, e.method), " ", e.route),
    h("td", { class: "num" }, num(e.count)),
    h("td", { class: "num" }, pct(e.error_rate)),
    h("td", { class: "num" }, ms(e.p50)),
    h("td", { class: "num" }, ms(e.p95)),
    h("td", { class: "num" }, ms(e.p99)),
    h("td", { class: "num" }, ms(e.max))))))));
  clear(page, head, chips, cards, charts, latency, table);
}
