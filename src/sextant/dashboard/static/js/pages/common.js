// Shared report controls: date range (presets + custom), comparison toggle, filter chips.
import { api } from "../api.js";
import { h, num } from "../util.js";

export const PRESETS = [
  ["-24h", "Last 24 hours"],
  ["-7d", "Last 7 days"],
  ["-30d", "Last 30 days"],
  ["-90d", "Last 90 days"],
  ["mtd", "Month to date"],
  ["ytd", "Year to date"],
  ["all", "All time"],
  ["custom", "Custom range…"],
];

const LABELS = {
  path: "Page", entry_page: "Entry page", exit_page: "Exit page", referrer_domain: "Referrer", utm_source: "UTM source",
  utm_medium: "UTM medium", utm_campaign: "UTM campaign", browser: "Browser", os: "OS",
  device_type: "Device", country: "Country", event: "Event", http_route: "Route",
  http_method: "Method", chain_id: "Chain", token_symbol: "Token", host: "Host",
};
export function label(property) {
  return LABELS[property] || property.replace(/^properties\./, "");
}

/** The report's date range and filters, read from the URL. */
export function readRange(params) {
  const from = params.get("from") || "-30d";
  const to = params.get("to") || "";
  let filters = [];
  try { filters = JSON.parse(params.get("f") || "[]"); } catch { filters = []; }
  if (!Array.isArray(filters)) filters = [];
  return { from, to, compare: params.get("compare") === "1", filters, interval: params.get("interval") || "" };
}

/** Default bucket size for a range, so charts have a sensible number of points. */
export function intervalFor(range) {
  if (range.interval) return range.interval;
  if (range.from === "-24h") return "hour";
  if (range.from === "all" || range.from === "ytd") return "week";
  if (/^\d{4}-\d{2}-\d{2}/.test(range.from)) {
    const days = ((range.to ? new Date(range.to) : new Date()) - new Date(range.from)) / 864e5;
    if (days <= 2) return "hour";
    if (days > 180) return "week";
  }
  return "day";
}

/** Query-string parameters for the convenience GET endpoints. */
export function rangeParams(range, extra = {}) {
  const p = { date_from: range.from, ...extra };
  if (range.to) p.date_to = range.to;
  if (range.filters.length) p.filters = JSON.stringify(range.filters);
  return p;
}

/** The common part of a POST /query body. */
export function rangeBody(range) {
  const b = { date_from: range.from, filters: range.filters };
  if (range.to) b.date_to = range.to;
  return b;
}

export function query(ctx, body) {
  return api(`/api/v1/projects/${ctx.project.id}/query`, { method: "POST", body });
}

export function stats(ctx, path, params) {
  return api(`/api/v1/projects/${ctx.project.id}/${path}`, { params });
}

/** Add (or replace) a filter and re-render the page with it. */
export function addFilter(ctx, property, value, op = "eq") {
  ctx.setParams((params) => {
    const { filters } = readRange(params);
    const next = filters.filter((f) => f.property !== property);
    next.push({ property, op, value });
    params.set("f", JSON.stringify(next));
  });
}

export function controls(ctx, { compare = true, title, subtitle } = {}) {
  const range = readRange(ctx.params);
  const isCustom = /^\d{4}-\d{2}-\d{2}/.test(range.from);
  const select = h("select", {
    "aria-label": "Date range",
    onchange: (e) => {
      if (e.target.value === "custom") { custom.hidden = false; fromInput.focus(); return; }
      ctx.setParams((p) => { p.set("from", e.target.value); p.delete("to"); p.delete("interval"); });
    },
  }, PRESETS.map(([v, l]) => h("option", { value: v, selected: v === range.from || (isCustom && v === "custom") }, l)));
  const today = new Date().toISOString().slice(0, 10);
  const fromInput = h("input", { type: "date", "aria-label": "From", value: isCustom ? range.from.slice(0, 10) : "", max: today, oninput: () => fromInput.setCustomValidity("") });
  const toInput = h("input", { type: "date", "aria-label": "To", value: isCustom && range.to ? range.to.slice(0, 10) : today, max: today, oninput: () => fromInput.setCustomValidity("") });
  const custom = h("form", {
    class: "toolbar", hidden: !isCustom,
    onsubmit: (e) => {
      e.preventDefault();
      if (!fromInput.value) return;
      const to = toInput.value || today;
      // Said here, next to the fields, instead of a failed page (the API answers 400).
      fromInput.setCustomValidity(fromInput.value > to ? "The start must not be after the end." : "");
      if (!fromInput.reportValidity()) return;
      ctx.setParams((p) => { p.set("from", fromInput.value); p.set("to", to); p.delete("interval"); });
    },
  }, fromInput, h("span", { class: "muted" }, "→"), toInput, h("button", { class: "btn secondary small", type: "submit" }, "Apply"));
  const cmp = compare ? h("label", { class: "check" }, h("input", {
    type: "checkbox", checked: range.compare,
    onchange: (e) => ctx.setParams((p) => { if (e.target.checked) p.set("compare", "1"); else p.delete("compare"); }),
  }), "Compare with previous period") : null;
  const head = h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, title || ctx.project.name), subtitle ? h("p", { class: "muted small", style: { margin: 0 } }, subtitle) : null),
    h("div", { class: "toolbar" }, cmp, select, custom));
  const chips = range.filters.length ? h("div", { class: "chips", "aria-label": "Active filters" },
    range.filters.map((f, i) => h("span", { class: "chip" },
      `${label(f.property)} ${f.op === "eq" ? "is" : f.op} ${Array.isArray(f.value) ? f.value.join(", ") : f.value ?? ""}`,
      h("button", {
        type: "button", "aria-label": `Remove filter ${label(f.property)}`,
        onclick: () => ctx.setParams((p) => {
          const next = range.filters.filter((_, j) => j !== i);
          if (next.length) p.set("f", JSON.stringify(next)); else p.delete("f");
        }),
      }, "×"))),
    h("button", { class: "btn link small", type: "button", onclick: () => ctx.setParams((p) => p.delete("f")) }, "Clear all")) : null;
  return { range, head, chips };
}

/** Percent change badge, saying so when the previous period had nothing. */
export function change(current, previous, changePct, invert = false) {
  if (previous === undefined || previous === null) return null;
  const cur = Number(current) || 0;
  const prev = Number(previous) || 0;
  if (prev === 0) {
    return h("span", { class: "change new", title: "nothing in the previous period" }, cur ? "new" : "no change");
  }
  const pctVal = changePct !== undefined && changePct !== null && Number.isFinite(Number(changePct))
    ? Number(changePct) : ((cur - prev) / prev) * 100;
  const up = pctVal > 0;
  const good = invert ? !up : up;
  if (Math.abs(pctVal) < 0.05) return h("span", { class: "change flat" }, "0%");
  // Past ten-fold the percentage says little (38 events before, 81,000 now): the factor.
  const text = pctVal >= 900 ? `${num(cur / prev)}×` : `${Math.abs(pctVal).toFixed(1)}%`;
  return h("span", { class: `change ${good ? "up" : "down"}`, title: `previous period: ${prev}` }, `${up ? "↑" : "↓"} ${text}`);
}
