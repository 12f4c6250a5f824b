// Small DOM and formatting helpers (no framework: the dashboard is plain ES modules).

/** h("div", {class: "x", onclick: fn}, child, "text", [more]) -> Element */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const plain = new Intl.NumberFormat("en");

export function num(v) {
  if (v === null || v === undefined || v === "") return "–";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return Math.abs(n) >= 10000 ? compact.format(n) : plain.format(Math.round(n * 100) / 100);
}
export function fullNum(v) {
  const n = Number(v);
  return Number.isFinite(n) ? plain.format(n) : String(v ?? "–");
}
export function pct(v, digits = 1) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
  return `${Number(v).toFixed(digits)}%`;
}
export function ms(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
  const n = Number(v);
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return `${n >= 100 ? Math.round(n) : n.toFixed(1)} ms`;
}
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
export function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
export function ago(ts) {
  const d = new Date(ts);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (!Number.isFinite(s)) return "";
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
/** Wei-like big integers as strings: shorten with a decimals hint (18 for ETH). */
export function bigAmount(value, decimals = 18) {
  if (value === null || value === undefined) return "–";
  const s = String(value).replace(/^0+(?=\d)/, "");
  if (!/^\d+$/.test(s)) return s;
  const whole = s.length > decimals ? s.slice(0, s.length - decimals) : "0";
  const frac = (s.length > decimals ? s.slice(s.length - decimals) : s.padStart(decimals, "0")).slice(0, 4).replace(/0+$/, "");
  return plain.format(BigInt(whole)) + (frac ? "." + frac : "");
}

let toastTimer;
export function toast(message, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = "toast" + (bad ? " bad" : "");
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3500);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { style: { position: "fixed", opacity: "0" } }, text);
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  toast("Copied to clipboard");
}

export function empty(title, text, action) {
  return h("div", { class: "empty" }, h("h2", {}, title), h("p", {}, text), action || null);
}

export function errorBox(e) {
  return h("div", { class: "empty" }, h("h2", {}, "Could not load this"), h("p", { class: "error" }, e.message || String(e)));
}

export function loading(text = "Loading…") {
  return h("div", { class: "loading" }, text);
}

export function formError(form, e) {
  let box = form.querySelector(".error");
  if (!box) { box = h("p", { class: "error", role: "alert" }); form.append(box); }
  box.textContent = e ? e.message || String(e) : "";
}

/** A card with a title and tabs; `render(tabId, body)` fills the body. */
export function tabbedCard(title, tabs, render, extra) {
  const body = h("div");
  const buttons = tabs.map(([id, label], i) => h("button", {
    type: "button", role: "tab", "aria-selected": i === 0 ? "true" : "false",
    onclick: () => {
      buttons.forEach((b) => b.setAttribute("aria-selected", "false"));
      buttons[i].setAttribute("aria-selected", "true");
      render(id, body);
    },
  }, label));
  const card = h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, title), h("div", { class: "tabs", role: "tablist" }, buttons)),
    extra || null, body);
  render(tabs[0][0], body);
  return card;
}
