// Events explorer: the activity feed with filters, one event in full, one person's journey.
import { h, clear, empty, errorBox, loading, num, when, ago } from "../util.js";
import { controls, query, rangeBody, stats } from "./common.js";
import { eventRows, personOf } from "./shapes.js";

export async function render(main, ctx, sub = []) {
  if (sub[0] === "person" && sub[1]) return renderPerson(main, ctx, sub[1]);
  if (sub[0] === "event" && sub[1]) return renderEvent(main, ctx, sub[1]);
  return renderFeed(main, ctx);
}

function notFound(ctx, err, title) {
  return h("div", { class: "page" }, h("p", {}, h("a", { href: `#/p/${ctx.project.id}/events` }, "← All events")),
    err.status === 404 ? empty(title, err.message) : errorBox(err));
}

function personLink(ctx, id) {
  return id ? h("a", { href: `#/p/${ctx.project.id}/events/person/${encodeURIComponent(id)}` }, id.length > 24 ? id.slice(0, 22) + "…" : id) : "–";
}

function describe(e) {
  const bits = [];
  if (e.path) bits.push(e.path);
  if (e.http_route) bits.push(`${e.http_method || ""} ${e.http_route} → ${e.http_status}`);
  if (e.tx_hash) bits.push(`${e.token_symbol || ""} ${e.tx_status || ""}`.trim());
  if (e.country) bits.push(e.country);
  if (e.browser && e.browser !== "Other") bits.push(e.browser);
  return bits.join(" · ");
}

async function renderFeed(main, ctx) {
  const { range, head, chips } = controls(ctx, { compare: false, title: "Events", subtitle: "Every event as it happened, newest first" });
  const eventName = h("input", { id: "f-event", placeholder: "Event name, e.g. $pageview", value: ctx.params.get("event") || "" });
  const person = h("input", { id: "f-person", placeholder: "User or anonymous id", value: ctx.params.get("distinct_id") || "" });
  const form = h("form", {
    class: "card toolbar",
    onsubmit: (e) => {
      e.preventDefault();
      ctx.setParams((p) => {
        if (eventName.value.trim()) p.set("event", eventName.value.trim()); else p.delete("event");
        if (person.value.trim()) p.set("distinct_id", person.value.trim()); else p.delete("distinct_id");
      });
    },
  }, h("label", { for: "f-event", class: "check" }, "Event"), eventName,
  h("label", { for: "f-person", class: "check" }, "Person"), person,
  h("button", { class: "btn secondary small", type: "submit" }, "Filter"));
  const tbody = h("tbody");
  const more = h("button", { class: "btn secondary", type: "button", hidden: true }, "Load more");
  const table = h("section", { class: "card" }, h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "Person"), h("th", {}, "Details"), h("th", { class: "num" }, "When"))), tbody)),
  h("div", { style: { textAlign: "center", marginTop: ".75rem" } }, more));
  const page = h("div", { class: "page" }, head, chips, form, table);
  clear(main, page);

  let cursor = null;
  const load = async () => {
    more.disabled = true;
    const body = { kind: "events", ...rangeBody(range), limit: 50 };
    if (ctx.params.get("event")) body.event = ctx.params.get("event");
    if (ctx.params.get("distinct_id")) body.distinct_id = ctx.params.get("distinct_id");
    if (cursor) body.cursor = cursor;
    let res;
    try { res = await query(ctx, body); } catch (e) { clear(table, errorBox(e)); return; }
    const rows = eventRows(res);
    cursor = res && (res.next_cursor || res.cursor);
    if (!rows.length && !tbody.children.length) {
      clear(table, empty("No events match", range.filters.length || body.event || body.distinct_id
        ? "Try removing a filter or widening the date range."
        : "Once your site or app sends events they show up here within a second.",
      h("a", { class: "btn", href: `#/p/${ctx.project.id}/settings` }, "Set up tracking")));
      return;
    }
    for (const e of rows) {
      const open = () => ctx.go(`/p/${ctx.project.id}/events/event/${encodeURIComponent(e.event_id)}`);
      tbody.append(h("tr", { class: "clickable", onclick: (ev) => { if (ev.target.tagName !== "A") open(); } },
        h("td", {}, h("a", { href: `#/p/${ctx.project.id}/events/event/${encodeURIComponent(e.event_id)}` }, e.event)),
        h("td", { class: "mono" }, personLink(ctx, e.distinct_id)),
        h("td", { class: "small muted" }, describe(e)),
        h("td", { class: "num small", title: when(e.timestamp) }, ago(e.timestamp))));
    }
    more.hidden = !cursor;
    more.disabled = false;
  };
  more.addEventListener("click", load);
  await load();
}

async function renderEvent(main, ctx, eventId) {
  clear(main, loading());
  let e;
  try { e = await stats(ctx, `events/${encodeURIComponent(eventId)}`); } catch (err) { clear(main, notFound(ctx, err, "No such event")); return; }
  // The API answers the event itself (flat); `e.event` is its name, not a wrapper.
  if (e && typeof e.event === "object" && e.event !== null) e = e.event;
  const skip = new Set(["properties", "project_id"]);
  const fields = Object.entries(e).filter(([k, v]) => !skip.has(k) && v !== "" && v !== null && v !== 0 && v !== "0");
  let props = e.properties;
  if (typeof props === "string") { try { props = JSON.parse(props); } catch { /* keep text */ } }
  clear(main, h("div", { class: "page" },
    h("p", {}, h("a", { href: `#/p/${ctx.project.id}/events` }, "← All events")),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, e.event), h("p", { class: "muted" }, when(e.timestamp), " · ", personLink(ctx, e.distinct_id)))),
    h("div", { class: "grid grid-2" },
      h("section", { class: "card" }, h("h2", {}, "Fields"), h("dl", { class: "kv" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v))]))),
      h("section", { class: "card" }, h("h2", {}, "Properties"), h("pre", {}, JSON.stringify(props || {}, null, 2))))));
}

async function renderPerson(main, ctx, distinctId) {
  clear(main, loading());
  let res;
  try { res = await stats(ctx, `persons/${encodeURIComponent(distinctId)}`); } catch (err) { clear(main, notFound(ctx, err, "No such person")); return; }
  const p = personOf(res);
  clear(main, h("div", { class: "page" },
    h("p", {}, h("a", { href: `#/p/${ctx.project.id}/events` }, "← All events")),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, p.name || distinctId), h("p", { class: "muted mono" }, p.ids.join(" · ")))),
    h("div", { class: "stats" },
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "First seen"), h("div", { class: "stat-value", style: { fontSize: "1rem" } }, when(p.first_seen))),
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Last seen"), h("div", { class: "stat-value", style: { fontSize: "1rem" } }, when(p.last_seen))),
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Events"), h("div", { class: "stat-value" }, num(p.total_events))),
      p.sessions !== undefined ? h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Visits"), h("div", { class: "stat-value" }, num(p.sessions))) : null),
    h("div", { class: "grid grid-2" },
      h("section", { class: "card" }, h("h2", {}, "Journey"),
        p.events.length ? h("ol", { class: "journey" }, p.events.map((e) => h("li", {},
          h("a", { href: `#/p/${ctx.project.id}/events/event/${encodeURIComponent(e.event_id)}` }, e.event), " ",
          h("span", { class: "muted small" }, describe(e)), h("div", { class: "muted small" }, when(e.timestamp)))))
          : h("p", { class: "muted" }, "No events."),
        Number(p.total_events) > p.events.length ? h("p", { class: "muted small" },
          `The latest ${num(p.events.length)} of ${num(p.total_events)} events. `,
          h("a", { href: `#/p/${ctx.project.id}/events?from=all&distinct_id=${encodeURIComponent(distinctId)}` }, "See them all")) : null),
      h("section", { class: "card" }, h("h2", {}, "Properties"),
        Object.keys(p.traits).length ? h("dl", { class: "kv" }, Object.entries(p.traits).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]))
          : h("p", { class: "muted small" }, "No traits yet: call identify(userId, traits) to add some.")))));
}
