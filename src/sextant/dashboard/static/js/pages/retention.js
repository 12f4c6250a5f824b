// Retention: cohorts by first occurrence, returning later, as a heat map.
import { heatmap } from "../charts.js";
import { h, clear, empty, errorBox, loading, pct } from "../util.js";
import { controls, query, rangeBody, rangeParams, stats } from "./common.js";
import { retentionOf, rowsOf } from "./shapes.js";

export async function render(main, ctx) {
  const { range, head, chips } = controls(ctx, { compare: false, title: "Retention", subtitle: "Of the people who started in each period, how many came back" });
  const page = h("div", { class: "page" }, head, chips, loading());
  clear(main, page);
  let names = [];
  try {
    const summary = await stats(ctx, "stats/summary", rangeParams({ ...range, filters: [] }));
    names = rowsOf(summary && summary.events).map((r) => String(r.label)).filter(Boolean);
  } catch { names = []; }
  const interval = ctx.params.get("interval") || "day";
  const startEvent = ctx.params.get("start") || "";
  const returnEvent = ctx.params.get("return") || "";
  const start = h("input", { id: "r-start", list: "r-events", value: startEvent, placeholder: "any event" });
  const ret = h("input", { id: "r-return", list: "r-events", value: returnEvent, placeholder: "any event" });
  const iv = h("select", { id: "r-interval" }, ["day", "week", "month"].map((v) => h("option", { value: v, selected: v === interval }, v)));
  const form = h("form", {
    class: "card",
    onsubmit: (e) => {
      e.preventDefault();
      ctx.setParams((p) => {
        for (const [k, el] of [["start", start], ["return", ret], ["interval", iv]]) {
          if (el.value.trim()) p.set(k, el.value.trim()); else p.delete(k);
        }
      });
    },
  }, h("datalist", { id: "r-events" }, names.map((n) => h("option", { value: n }))),
  h("div", { class: "field-row" },
    h("div", {}, h("label", { for: "r-start" }, "People who did"), start),
    h("div", {}, h("label", { for: "r-return" }, "and came back to do"), ret),
    h("div", {}, h("label", { for: "r-interval" }, "By"), iv),
    h("button", { class: "btn", type: "submit" }, "Update")));
  const result = h("section", { class: "card" }, loading());
  clear(page, head, chips, form, result);

  const body = { kind: "retention", ...rangeBody(range), interval, periods: interval === "day" ? 14 : interval === "week" ? 8 : 6 };
  if (startEvent) body.start_event = startEvent;
  if (returnEvent) body.return_event = returnEvent;
  let res;
  try { res = await query(ctx, body); } catch (e) { clear(result, errorBox(e)); return; }
  const data = retentionOf(res);
  if (!data.cohorts.length || data.cohorts.every((c) => !Number(c.size))) {
    clear(result, empty("No cohorts yet", "Retention needs people who were active in this period. Widen the date range or send more events."));
    return;
  }
  const rates = Object.entries(data.rates || {}).filter(([, v]) => v !== null && v !== undefined);
  clear(result,
    h("div", { class: "card-head" }, h("h2", {}, "Cohorts"),
      h("div", { class: "toolbar small" }, rates.map(([k, v]) => h("span", { class: "badge accent" }, `${k.replace("_", " ")} retention: ${pct(v)}`)))),
    heatmap(data.cohorts, interval[0].toUpperCase() + interval.slice(1)));
}
