// Funnels: pick ordered steps, see persons per step with conversion and drop-off.
import { funnelBars } from "../charts.js";
import { h, clear, duration, empty, errorBox, loading, num } from "../util.js";
import { controls, query, rangeBody, rangeParams, stats } from "./common.js";
import { funnelSteps, rowsOf } from "./shapes.js";

const WINDOWS = [[3600, "1 hour"], [86400, "1 day"], [7 * 86400, "7 days"], [14 * 86400, "14 days"], [30 * 86400, "30 days"]];

export async function render(main, ctx) {
  const { range, head, chips } = controls(ctx, { compare: false, title: "Funnels", subtitle: "How many people go through each step, in order" });
  const page = h("div", { class: "page" }, head, chips, loading());
  clear(main, page);

  // Known event names for the step pickers.
  let names = [];
  try {
    const summary = await stats(ctx, "stats/summary", rangeParams({ ...range, filters: [] }));
    names = rowsOf(summary && summary.events).map((r) => String(r.label)).filter(Boolean);
  } catch { names = []; }
  let steps = [];
  try { steps = JSON.parse(ctx.params.get("steps") || "[]"); } catch { steps = []; }
  if (!Array.isArray(steps) || steps.length < 2) {
    const custom = names.filter((n) => !n.startsWith("$"));
    const start = names.includes("$pageview") ? "$pageview" : custom[0] || "";
    steps = [start, ...custom.filter((n) => n !== start).slice(0, 2)];
    while (steps.length < 2) steps.push("");
  }
  const windowSeconds = Number(ctx.params.get("window")) || 86400;
  const order = ctx.params.get("order") || "ordered";

  const list = h("datalist", { id: "event-names" }, names.map((n) => h("option", { value: n })));
  const stepBox = h("div", { class: "steps" });
  const drawSteps = () => clear(stepBox, steps.map((s, i) => h("div", { class: "step-row" },
    h("span", { class: "num" }, String(i + 1)),
    h("input", {
      value: s, list: "event-names", required: true, "aria-label": `Step ${i + 1} event`, placeholder: "event name",
      oninput: (e) => { steps[i] = e.target.value; },
    }),
    steps.length > 2 ? h("button", { class: "btn secondary small", type: "button", "aria-label": `Remove step ${i + 1}`, onclick: () => { steps.splice(i, 1); drawSteps(); } }, "Remove") : null)));
  drawSteps();
  const win = h("select", { id: "funnel-window" }, WINDOWS.map(([v, l]) => h("option", { value: v, selected: v === windowSeconds }, l)));
  const ord = h("select", { id: "funnel-order" },
    [["ordered", "in this order (other events may happen between)"], ["strict", "strictly in a row"], ["any", "in any order"]].map(([v, l]) => h("option", { value: v, selected: v === order }, l)));
  const builder = h("form", {
    class: "card",
    onsubmit: (e) => {
      e.preventDefault();
      const clean = steps.map((s) => s.trim()).filter(Boolean);
      ctx.setParams((p) => { p.set("steps", JSON.stringify(clean)); p.set("window", win.value); p.set("order", ord.value); });
    },
  }, h("h2", {}, "Steps"), list, stepBox,
  h("div", { class: "toolbar", style: { marginTop: ".6rem" } },
    steps.length < 10 ? h("button", { class: "btn secondary small", type: "button", onclick: () => { steps.push(""); drawSteps(); stepBox.lastChild.querySelector("input").focus(); } }, "+ Add step") : null),
  h("div", { class: "field-row" },
    h("div", {}, h("label", { for: "funnel-window" }, "Completed within"), win),
    h("div", {}, h("label", { for: "funnel-order" }, "Steps happen"), ord),
    h("button", { class: "btn", type: "submit" }, "Show funnel")));
  const result = h("section", { class: "card" });
  clear(page, head, chips, builder, result);

  const chosen = steps.map((s) => s.trim()).filter(Boolean);
  if (!ctx.params.get("steps") && chosen.length < 2) {
    clear(result, empty("Build your first funnel", names.length
      ? "Pick two or more events, e.g. a page view, a sign-up and a purchase."
      : "Send a few events first: funnels are built from event names."));
    return;
  }
  clear(result, loading());
  let res;
  try {
    res = await query(ctx, { kind: "funnel", ...rangeBody(range), steps: chosen.map((event) => ({ event })), window_seconds: windowSeconds, order });
  } catch (e) { clear(result, errorBox(e)); return; }
  const rows = funnelSteps(res, chosen);
  const first = rows[0] ? Number(rows[0].count) : 0;
  const last = rows.length ? Number(rows[rows.length - 1].count) : 0;
  clear(result,
    h("div", { class: "card-head" }, h("h2", {}, "Conversion"),
      h("span", { class: "muted small" }, first ? `${num(last)} of ${num(first)} converted (${((last / first) * 100).toFixed(1)}%)` : "")),
    first ? funnelBars(rows, duration) : empty("Nobody entered this funnel", "No one did the first step in this period. Try another first step or a longer range."));
}
