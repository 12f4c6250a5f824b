// Overview: Plausible-style cards, time series, and top lists that filter the page on click.
import { barList, lineChart } from "../charts.js";
import { h, clear, duration, empty, errorBox, loading, num, pct, tabbedCard } from "../util.js";
import { addFilter, change, controls, intervalFor, query, rangeBody, rangeParams, stats } from "./common.js";
import { rowsOf, trendTotals, trendSeries } from "./shapes.js";

// Card -> trends series. `unique_persons` counts a person once even across devices after identify.
const METRICS = [
  { id: "visitors", label: "Unique visitors", series: { measure: "unique_persons", name: "visitors" } },
  { id: "pageviews", label: "Page views", series: { event: "$pageview", measure: "total", name: "pageviews" } },
  { id: "events", label: "Total events", series: { measure: "total", name: "events" } },
  { id: "sessions", label: "Sessions", series: { measure: "sessions", name: "sessions" } },
];

export async function render(main, ctx) {
  const { range, head, chips } = controls(ctx, { subtitle: "Traffic and activity at a glance" });
  const interval = intervalFor(range);
  const cards = h("div", { class: "stats" }, loading());
  const chartCard = h("section", { class: "card" }, loading());
  const lists = h("div");
  const page = h("div", { class: "page" }, head, chips, cards, chartCard, lists);
  clear(main, page);

  const selected = ctx.params.get("metric") || "visitors";
  let trends;
  try {
    trends = await query(ctx, {
      kind: "trends", ...rangeBody(range), interval, compare: true,
      series: METRICS.map((m) => m.series),
    });
  } catch (e) {
    clear(page, head, chips, errorBox(e));
    return;
  }
  const totals = trendTotals(trends);
  const anything = Object.values(totals).some((t) => Number(t.value) > 0);
  if (!anything && !range.filters.length) {
    clear(page, head, empty("No events in this period yet",
      "Add the tracking snippet to your site, send events with the Python SDK or any Segment library, or pick a longer date range.",
      h("div", { class: "toolbar", style: { justifyContent: "center" } },
        h("a", { class: "btn", href: `#/p/${ctx.project.id}/settings` }, "Get the snippet"),
        h("a", { class: "btn secondary", href: `#/p/${ctx.project.id}/live` }, "Watch live"))));
    return;
  }

  // Cards: click one to chart it.
  const sessions = totals.sessions ? Number(totals.sessions.value) : 0;
  const extra = [];
  if (sessions && totals.pageviews) {
    extra.push({ label: "Views per visit", value: (Number(totals.pageviews.value) / sessions).toFixed(2) });
  }
  clear(cards, METRICS.map((m) => {
    const t = totals[m.id] || {};
    return h("button", {
      type: "button", class: "stat", "aria-pressed": m.id === selected ? "true" : "false",
      style: { all: "unset", cursor: "pointer", padding: ".9rem 1.1rem", borderBottom: m.id === selected ? "3px solid var(--accent)" : "3px solid transparent" },
      onclick: () => ctx.setParams((p) => p.set("metric", m.id)),
    }, h("div", { class: "stat-label" }, m.label), h("div", { class: "stat-value" }, num(t.value)),
    change(t.value, t.previous, t.change));
  }), extra.map((x) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, x.label), h("div", { class: "stat-value" }, x.value))));

  const series = trendSeries(trends, selected);
  clear(chartCard,
    h("div", { class: "card-head" }, h("h2", {}, METRICS.find((m) => m.id === selected).label),
      h("div", { class: "tabs" }, ["hour", "day", "week", "month"].map((iv) => h("button", {
        type: "button", "aria-selected": iv === interval ? "true" : "false",
        onclick: () => ctx.setParams((p) => p.set("interval", iv)),
      }, iv)))),
    lineChart({ labels: series.labels, values: series.values, previous: range.compare ? series.previous : null, interval, name: selected }));

  // Top lists from the summary (one scan), plus campaigns and entry pages.
  let summary = null;
  try { summary = await stats(ctx, "stats/summary", rangeParams(range)); } catch (e) { summary = { error: e }; }
  const list = (key) => rowsOf(summary && summary[key]);
  const showList = (property, key, body, opts = {}) => {
    const rows = opts.rows || list(key);
    clear(body, rows.length
      ? barList(rows.slice(0, 10), { onClick: (r) => addFilter(ctx, property, r.label) })
      : h("p", { class: "muted small" }, summary && summary.error ? summary.error.message : "Nothing here for this period."));
  };
  const breakdown = async (property, body) => {
    clear(body, loading());
    try {
      const res = await stats(ctx, `stats/breakdown/${property}`, rangeParams(range));
      showList(property, null, body, { rows: rowsOf(res) });
    } catch (e) { clear(body, h("p", { class: "muted small" }, e.message)); }
  };
  const pages = tabbedCard("Pages", [["top", "Top pages"], ["entry", "Entry pages"]], (tab, body) => {
    if (tab === "top") showList("path", "pages", body);
    else breakdown("entry_page", body);
  });
  const sources = tabbedCard("Sources", [["ref", "Referrers"], ["utm_source", "UTM sources"], ["utm_campaign", "Campaigns"], ["utm_medium", "Mediums"]], (tab, body) => {
    if (tab === "ref") showList("referrer_domain", "referrers", body);
    else if (tab === "utm_source") showList("utm_source", "utm_sources", body);
    else breakdown(tab, body);
  });
  const devices = tabbedCard("Devices", [["browser", "Browser"], ["os", "OS"], ["device_type", "Size"]], (tab, body) => {
    showList(tab, { browser: "browsers", os: "os", device_type: "device_types" }[tab], body);
  });
  const countries = h("section", { class: "card" }, h("h2", {}, "Countries"), h("div"));
  showList("country", "countries", countries.lastChild);
  const eventsCard = h("section", { class: "card" }, h("h2", {}, "Events"), h("div"));
  showList("event", "events", eventsCard.lastChild);
  clear(lists, h("div", { class: "grid grid-2" }, sources, pages), h("div", { class: "grid grid-2" }, devices, countries), h("div", { class: "grid grid-2" }, eventsCard,
    summary && summary.bounce_rate !== undefined ? h("section", { class: "card" }, h("h2", {}, "Engagement"),
      h("dl", { class: "kv" }, h("dt", {}, "Bounce rate"), h("dd", {}, pct(summary.bounce_rate)),
        h("dt", {}, "Visit duration"), h("dd", {}, duration(summary.avg_session_seconds)))) : null));
}
