// Overview: Plausible-style cards, time series, and top lists that filter the page on click.
import { barList, lineChart } from "../charts.js";
import { h, clear, empty, errorBox, loading, num, tabbedCard } from "../util.js";
import { addFilter, change, controls, intervalFor, query, rangeBody, rangeParams, stats } from "./common.js";
import { rowsOf, trendTotals, trendSeries } from "./shapes.js";

// Card -> trends series. `unique_persons` counts a person once even across devices after identify.
const METRICS = [
  { id: "visitors", label: "Unique visitors", series: { event: "$pageview", measure: "unique_persons", name: "visitors" } },
  { id: "pageviews", label: "Page views", series: { event: "$pageview", measure: "total", name: "pageviews" } },
  { id: "events", label: "Total events", series: { measure: "total", name: "events" } },
  { id: "sessions", label: "Visits", series: { event: "$pageview", measure: "sessions", name: "sessions" } },
];

const regionNames = (() => { try { return new Intl.DisplayNames(["en"], { type: "region" }); } catch { return null; } })();
function countryName(code) {
  if (!code || code.length !== 2) return code || "Unknown";
  let name = code;
  try { name = (regionNames && regionNames.of(code.toUpperCase())) || code; } catch { /* unknown code */ }
  return name;
}

/** Seconds as `42s`, `3m 05s` or `1h 02m`. */
function duration(seconds) {
  const s = Math.round(Number(seconds) || 0);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

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

  // Cards: click one to chart it. Bounce rate and visit length come from the visits report.
  let visits = null;
  try { visits = await stats(ctx, "stats/sessions", rangeParams(range)); } catch { visits = null; }
  const extra = [];
  if (visits && visits.visits) {
    const cmp = visits.comparison || {};
    extra.push({ label: "Bounce rate", value: `${Math.round(visits.bounce_rate)}%`, c: cmp.bounce_rate, invert: true });
    extra.push({ label: "Visit duration", value: duration(visits.avg_duration_seconds), c: cmp.avg_duration_seconds });
  }
  clear(cards, METRICS.map((m) => {
    const t = totals[m.id] || {};
    return h("button", {
      type: "button", class: "stat stat-button", "aria-pressed": m.id === selected ? "true" : "false", title: `Chart ${m.label.toLowerCase()}`,
      onclick: () => ctx.setParams((p) => p.set("metric", m.id)),
    }, h("div", { class: "stat-label" }, m.label), h("div", { class: "stat-value" }, num(t.value)),
    change(t.value, t.previous, t.change));
  }), extra.map((x) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, x.label), h("div", { class: "stat-value" }, x.value),
    x.c ? change(x.c.value, x.c.previous, x.c.change_pct, x.invert) : null)));

  const series = trendSeries(trends, selected);
  clear(chartCard,
    h("div", { class: "card-head" }, h("h2", {}, METRICS.find((m) => m.id === selected).label),
      h("div", { class: "tabs" }, ["hour", "day", "week", "month"].map((iv) => h("button", {
        type: "button", "aria-selected": iv === interval ? "true" : "false",
        onclick: () => ctx.setParams((p) => p.set("interval", iv)),
      }, iv)))),
    lineChart({ labels: series.labels, values: series.values, previous: range.compare ? series.previous : null, interval, name: selected }));

  // Top lists: breakdowns of page views. Self-referrals (the site's own hosts) are not
  // sources; a page view referred from outside the site (or from nowhere) starts a visit.
  let hosts = [];
  try {
    const res = await stats(ctx, "stats/breakdown/host", rangeParams(range, { event: "$pageview", limit: 20 }));
    hosts = rowsOf(res).map((r) => r.raw).filter((v) => v && v !== "$other");
  } catch { hosts = []; }
  const external = hosts.length ? [{ property: "referrer_domain", op: "not_in", value: hosts }] : [];
  // An event of the Events card opens the activity feed of that event (over the same range):
  // as a filter here it would only narrow page views to events that are not page views.
  const openEvent = (name) => {
    const p = new URLSearchParams();
    p.set("from", range.from);
    if (range.to) p.set("to", range.to);
    p.set("event", name);
    ctx.go(`/p/${ctx.project.id}/events`, p);
  };
  const breakdown = async (property, body, { event = "$pageview", extra = [], measure, onPick } = {}) => {
    clear(body, loading());
    try {
      const params = rangeParams({ ...range, filters: [...range.filters, ...extra] }, { limit: 10 });
      if (event) params.event = event;
      const rows = rowsOf(await stats(ctx, `stats/breakdown/${property}`, params), measure)
        .filter((r) => r.raw !== "" || property === "referrer_domain")
        .sort((a, b) => (a.other - b.other) || (Number(b.value) - Number(a.value)))
        .map((r) => (property === "country" && !r.other ? { ...r, label: countryName(r.raw) } : r));
      clear(body, rows.length
        ? barList(rows.map((r) => (property === "referrer_domain" && r.raw === "" ? { ...r, label: "Direct / none" } : r)), {
          onClick: (r) => (r.other ? null : onPick ? onPick(r.raw) : addFilter(ctx, property, r.raw)),
          showPrevious: range.compare,
        })
        : h("p", { class: "muted small" }, "Nothing here for this period."));
    } catch (e) { clear(body, h("p", { class: "muted small" }, e.message)); }
  };
  const head2 = (a, b) => h("div", { class: "list-head" }, h("span", {}, a), h("span", {}, b));
  const pages = tabbedCard("Pages", [["top", "Top pages"], ["entry", "Entry pages"]], (tab, body) => {
    if (tab === "top") breakdown("path", body);
    else breakdown("path", body, { extra: external });
  }, head2("Page", "Visitors"));
  const sources = tabbedCard("Sources", [["ref", "Referrers"], ["utm_source", "UTM sources"], ["utm_campaign", "Campaigns"], ["utm_medium", "Mediums"]], (tab, body) => {
    if (tab === "ref") breakdown("referrer_domain", body, { extra: external });
    else breakdown(tab, body, { extra: [{ property: tab, op: "is_set" }] });
  }, head2("Source", "Visitors"));
  const devices = tabbedCard("Devices", [["browser", "Browser"], ["os", "OS"], ["device_type", "Size"]], (tab, body) => breakdown(tab, body), head2("Name", "Visitors"));
  const countries = tabbedCard("Locations", [["country", "Countries"], ["region", "Regions"], ["city", "Cities"]], (tab, body) => breakdown(tab, body), head2("Location", "Visitors"));
  const eventsCard = tabbedCard("Events", [["event", "Goals and events"]], (tab, body) => breakdown("event", body, { event: null, measure: "events", onPick: openEvent }), head2("Event", "Count"));
  clear(lists, h("div", { class: "grid grid-2" }, sources, pages), h("div", { class: "grid grid-2" }, countries, devices), eventsCard);
}
