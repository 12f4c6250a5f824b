// Hand-drawn SVG charts: a time series with an optional comparison line, bar lists,
// funnel bars and a retention heat map. No library, no network.
import { h, num } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Buckets are days, weeks and hours of the project's time zone (the API labels them so):
// labelled in that zone, not the browser's, or a Berlin day reads as the day before in
// New York. `setChartTimeZone` is called when a project is opened.
let chartZone = "UTC";
export function setChartTimeZone(tz) {
  try { new Intl.DateTimeFormat(undefined, { timeZone: tz }); chartZone = tz; } catch { chartZone = "UTC"; }
}

function manyDays(labels) {
  return labels.length > 1 && Math.abs(new Date(labels[labels.length - 1]) - new Date(labels[0])) >= 864e5;
}

function shortLabel(label, interval, spansDays) {
  const d = new Date(label);
  if (Number.isNaN(d.getTime())) return String(label);
  const timeZone = chartZone;
  if (interval === "minute" || interval === "hour") {
    const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", timeZone });
    return spansDays ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone })} ${time}` : time;
  }
  if (interval === "month") return d.toLocaleDateString(undefined, { month: "short", year: "numeric", timeZone });
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone });
}

function longLabel(label, interval) {
  const d = new Date(label);
  if (Number.isNaN(d.getTime())) return String(label);
  const timeZone = chartZone;
  if (interval === "minute" || interval === "hour") return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone });
  if (interval === "week") return `week of ${d.toLocaleDateString(undefined, { dateStyle: "medium", timeZone })}`;
  if (interval === "month") return d.toLocaleDateString(undefined, { month: "long", year: "numeric", timeZone });
  return d.toLocaleDateString(undefined, { dateStyle: "medium", timeZone });
}

/**
 * lineChart({labels, values, previous, interval, format, name}) -> Element
 * `previous` (optional) is drawn dashed: the same-length period before.
 */
export function lineChart(opts) {
  const wrap = h("div", { class: "chart", role: "img", "aria-label": opts.name || "time series" });
  const draw = () => {
    const width = Math.max(wrap.clientWidth || 600, 260);
    wrap.replaceChildren(render(opts, width, wrap));
  };
  requestAnimationFrame(draw);
  let last = 0;
  const ro = new ResizeObserver(() => {
    const w = wrap.clientWidth;
    if (Math.abs(w - last) > 4) { last = w; draw(); }
  });
  ro.observe(wrap);
  return wrap;
}

function render(opts, width, wrap) {
  const { labels = [], values = [], previous, interval = "day", format = num } = opts;
  const height = opts.height || 240;
  const pad = { l: 44, r: 12, t: 12, b: 26 };
  const iw = width - pad.l - pad.r;
  const ih = height - pad.t - pad.b;
  const all = values.concat(previous || []).map(Number).filter(Number.isFinite);
  const max = niceMax(Math.max(0, ...all));
  const n = Math.max(values.length, 1);
  const x = (i) => pad.l + (n === 1 ? iw / 2 : (i * iw) / (n - 1));
  const y = (v) => pad.t + ih - (Number(v) / max) * ih;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, height, preserveAspectRatio: "none" });
  svg.append(s("defs", {}, s("linearGradient", { id: "sx-grad", x1: 0, x2: 0, y1: 0, y2: 1 },
    s("stop", { offset: "0%", "stop-color": "#4f46e5", "stop-opacity": ".18" }),
    s("stop", { offset: "100%", "stop-color": "#4f46e5", "stop-opacity": "0" }))));
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const yy = y(v);
    svg.append(s("line", { class: "grid-line", x1: pad.l, x2: width - pad.r, y1: yy, y2: yy }));
    const t = s("text", { class: "axis", x: pad.l - 6, y: yy + 4, "text-anchor": "end" });
    t.textContent = num(v);
    svg.append(t);
  }
  const spansDays = (interval === "minute" || interval === "hour") && manyDays(labels);
  const ticks = Math.min(n, Math.max(2, Math.floor(iw / (spansDays ? 120 : 90))));
  for (let k = 0; k < ticks; k++) {
    const i = ticks === 1 ? 0 : Math.round((k * (n - 1)) / (ticks - 1));
    const t = s("text", { class: "axis", x: x(i), y: height - 6, "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle" });
    t.textContent = shortLabel(labels[i], interval, spansDays);
    svg.append(t);
  }
  const path = (vals) => vals.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v || 0).toFixed(1)}`).join("");
  if (previous && previous.length) svg.append(s("path", { class: "line prev", d: path(previous.slice(0, n)) }));
  if (values.length) {
    svg.append(s("path", { class: "area", d: `${path(values)}L${x(values.length - 1)},${y(0)}L${x(0)},${y(0)}Z` }));
    svg.append(s("path", { class: "line", d: path(values) }));
  }
  // Hover: a guide line, a dot and a tooltip with this bucket's (and the previous) value.
  const guide = s("line", { class: "hover-line", y1: pad.t, y2: pad.t + ih, visibility: "hidden" });
  const dot = s("circle", { class: "dot", r: 4, visibility: "hidden" });
  svg.append(guide, dot);
  const tip = h("div", { class: "tooltip", hidden: true });
  const move = (clientX) => {
    const rect = svg.getBoundingClientRect();
    const px = ((clientX - rect.left) / rect.width) * width;
    const i = Math.max(0, Math.min(n - 1, Math.round(((px - pad.l) / iw) * (n - 1))));
    if (!values.length) return;
    guide.setAttribute("x1", x(i)); guide.setAttribute("x2", x(i));
    dot.setAttribute("cx", x(i)); dot.setAttribute("cy", y(values[i] || 0));
    guide.setAttribute("visibility", "visible"); dot.setAttribute("visibility", "visible");
    tip.replaceChildren(h("div", {}, h("strong", {}, format(values[i])), " · ", longLabel(labels[i], interval)),
      previous && previous[i] !== undefined ? h("div", { style: { opacity: ".75" } }, `previous: ${format(previous[i])}`) : null);
    tip.hidden = false;
    tip.style.left = `${(x(i) / width) * 100}%`;
    tip.style.top = `${y(values[i] || 0)}px`;
  };
  svg.addEventListener("mousemove", (e) => move(e.clientX));
  svg.addEventListener("mouseleave", () => {
    tip.hidden = true; guide.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden");
  });
  const frag = document.createDocumentFragment();
  frag.append(svg, tip);
  if (previous && previous.length) {
    frag.append(h("div", { class: "legend" }, h("span", {}, h("i"), opts.name || "this period"), h("span", {}, h("i", { class: "prev" }), "previous period")));
  }
  return frag;
}

/**
 * barList(rows, {onClick, format, label}) where rows = [{label, value, previous?, title?}]
 * Each row is a button (keyboard reachable) when onClick is given.
 */
export function barList(rows, opts = {}) {
  const format = opts.format || num;
  const max = Math.max(1, ...rows.map((r) => Number(r.value) || 0));
  return h("ul", { class: "barlist" }, rows.map((r) => {
    const width = `${Math.max(1, ((Number(r.value) || 0) / max) * 100)}%`;
    const label = r.label === "" || r.label === null || r.label === undefined ? "(none)" : String(r.label);
    const text = opts.onClick
      ? h("button", { class: "row", type: "button", title: `Filter by ${label}`, onclick: () => opts.onClick(r) }, label)
      : h("span", { title: r.title || label }, label);
    return h("li", {}, h("span", { class: "bar", style: { width } }), text,
      h("span", { class: "val" }, format(r.value),
        opts.showPrevious && r.previous !== undefined && r.previous !== null ? h("span", { class: "prev", title: "previous period" }, `vs ${format(r.previous)}`) : null));
  }));
}

/** Funnel bars: steps = [{name, count, conversion_from_first, conversion_from_previous, drop_off, median_seconds}] */
export function funnelBars(steps, fmtDuration) {
  const first = Math.max(1, Number(steps[0] && steps[0].count) || 0);
  return h("div", { class: "funnel" }, steps.map((st, i) => {
    const fromFirst = st.conversion_from_first ?? ((Number(st.count) / first) * 100);
    return h("div", { class: "funnel-step" },
      h("div", {}, h("strong", {}, `${i + 1}. ${st.name}`),
        h("div", { class: "funnel-meta" },
          i === 0 ? "entered the funnel" : `${Number(st.conversion_from_previous ?? 0).toFixed(1)}% of previous step`,
          i > 0 && st.drop_off !== undefined ? ` · ${num(st.drop_off)} dropped off` : "",
          i > 0 && st.median_seconds ? ` · median ${fmtDuration(st.median_seconds)}` : "")),
      h("div", { class: "funnel-track", title: `${num(st.count)} persons` },
        h("div", { class: "funnel-fill", style: { width: `${Math.max(0.5, fromFirst)}%` } }),
        // Inside a wide bar in white; beside a narrow one in the text colour.
        h("span", {
          class: "funnel-label" + (fromFirst >= 25 ? " on-fill" : ""),
          style: fromFirst >= 25 ? null : { left: `calc(${Math.max(0.5, fromFirst)}% + .5rem)` },
        }, `${num(st.count)} · ${Number(fromFirst).toFixed(1)}%`)));
  }));
}

/** Retention heat map: cohorts = [{label, size, values: [percent...]}] */
export function heatmap(cohorts, periodLabel) {
  const cols = Math.max(0, ...cohorts.map((c) => c.values.length));
  const color = (p) => {
    if (p === null || p === undefined) return "#fff";
    const a = Math.min(1, Math.max(0.04, Number(p) / 100));
    return `rgba(79, 70, 229, ${a.toFixed(3)})`;
  };
  return h("div", { class: "table-wrap" }, h("table", { class: "heat" },
    h("thead", {}, h("tr", {}, h("th", {}, "Cohort"), h("th", { class: "num" }, "People"),
      Array.from({ length: cols }, (_, i) => h("th", { class: "num" }, `${periodLabel} ${i}`)))),
    h("tbody", {}, cohorts.map((c) => h("tr", {}, h("td", {}, c.label), h("td", { class: "num" }, num(c.size)),
      Array.from({ length: cols }, (_, i) => {
        const v = c.values[i];
        const dark = v !== null && v !== undefined && Number(v) > 45;
        return h("td", {
          class: "cell", style: { background: color(v), color: dark ? "#fff" : "#1f2330" },
          title: v === null || v === undefined ? "not yet" : `${Number(v).toFixed(1)}% of ${c.size} came back in ${periodLabel.toLowerCase()} ${i}`,
        }, v === null || v === undefined ? "" : `${Number(v).toFixed(1)}%`);
      }))))));
}
