// Adapters from the analytics API's JSON to what the charts draw: kept in one place.

/**
 * [{label, value, previous, change}] from breakdown rows
 * ({value, events, unique_users, previous_events, previous_unique_users, change_pct}).
 * `measure` picks visitors ("unique_users", the default) or "events".
 */
export function rowsOf(x, measure = "unique_users") {
  if (!x) return [];
  const rows = Array.isArray(x) ? x : x.results || [];
  return rows.map((r) => ({
    raw: r.value,
    label: r.value === "$other" ? "Other" : r.value,
    value: r[measure] ?? r.events ?? 0,
    previous: r["previous_" + measure],
    change: r.change_pct,
    other: r.value === "$other",
  }));
}

/** {label: {value, previous, change}} from a trends answer with `compare`. */
export function trendTotals(res) {
  const out = {};
  for (const s of (res && res.series) || []) {
    const c = s.compare || {};
    out[s.label] = { value: s.total ?? c.value, previous: c.previous, change: c.change_pct };
  }
  return out;
}

/** {labels, values, previous} for one series (by label) of a trends answer. */
export function trendSeries(res, label) {
  const s = ((res && res.series) || []).find((x) => x.label === label) || {};
  const points = s.data || [];
  return {
    labels: points.map((p) => p.bucket),
    values: points.map((p) => Number(p.value ?? 0)),
    previous: points.map((p) => (p.previous === undefined ? null : Number(p.previous))),
  };
}

/** Events of an activity-feed answer. */
export function eventRows(res) {
  return (res && (res.results || res.events)) || [];
}

/** {name, ids, first_seen, last_seen, total_events, sessions, traits, events (oldest first)} */
export function personOf(res) {
  const p = res || {};
  const props = p.properties || p.traits || {};
  // identify() traits are stored under "$traits"; show them as the person's properties.
  const { $traits: nested, ...rest } = props;
  const traits = { ...rest, ...(nested && typeof nested === "object" ? nested : {}) };
  return {
    name: traits.name || traits.email || p.person_id,
    ids: p.distinct_ids || [],
    first_seen: p.first_seen,
    last_seen: p.last_seen,
    total_events: p.total_events,
    sessions: p.sessions,
    traits,
    events: [...(p.recent_events || [])].reverse(),
  };
}

/** Funnel steps with counts and rates. */
export function funnelSteps(res, names) {
  return ((res && res.steps) || []).map((s, i) => ({
    name: s.name || s.event || names[i],
    count: s.persons ?? 0,
    conversion_from_first: s.conversion_from_first,
    conversion_from_previous: s.conversion_from_previous,
    drop_off: s.drop_off,
    median_seconds: s.median_seconds_to_convert,
  }));
}

/** {cohorts: [{label, size, values: [percent]}], rates} from a retention answer. */
export function retentionOf(res) {
  // Periods that have not happened yet are blank, not 0%.
  const step = { day: 864e5, week: 7 * 864e5, month: 30.44 * 864e5 }[(res && res.interval) || "day"];
  const now = Date.now();
  const cohorts = ((res && res.cohorts) || []).filter((c) => Number(c.persons) > 0).map((c) => {
    const start = new Date(c.cohort).getTime();
    return {
      label: new Date(c.cohort).toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric", timeZone: res.timezone || "UTC" }),
      size: c.persons ?? 0,
      values: (c.rates || []).map((v, i) => (start + i * step > now ? null : v)),
    };
  });
  const rates = {};
  for (const [k, v] of Object.entries((res && (res.rates || res.summary)) || {})) {
    if (typeof v === "number") rates[k] = v;
  }
  return { cohorts, rates };
}

/** {summary, endpoints, series: {labels, count, error_rate, p50, p95, p99}} */
export function apiOf(res) {
  const points = (res && res.series) || [];
  const pick = (k) => points.map((p) => (p[k] === null || p[k] === undefined ? 0 : Number(p[k])));
  return {
    summary: (res && res.summary) || {},
    endpoints: ((res && res.endpoints) || []).map((e) => ({ ...e, count: e.request_count })),
    series: {
      labels: points.map((p) => p.bucket),
      count: pick("request_count"),
      error_rate: pick("error_rate"),
      p50: pick("p50"), p95: pick("p95"), p99: pick("p99"),
    },
  };
}

/** {summary, volume, chains, contracts, series} from a web3 answer. */
export function web3Of(res) {
  const r = res || {};
  const volume = r.volume || [];
  const byChain = {};
  for (const v of volume) byChain[v.chain_id] = (byChain[v.chain_id] || 0) + Number(v.tx_count || 0);
  const points = r.series || [];
  return {
    summary: r.summary || {},
    volume,
    chains: Object.entries(byChain).map(([chain_id, tx_count]) => ({ chain_id, tx_count })).sort((a, b) => b.tx_count - a.tx_count),
    contracts: (r.top_contracts || []).map((c) => ({ contract: c.contract, count: c.tx_count })),
    wallets: r.wallets || [],
    series: {
      labels: points.map((p) => p.bucket),
      values: points.map((p) => Number(p.tx_count ?? 0)),
      wallets: points.map((p) => Number(p.unique_wallets ?? 0)),
    },
  };
}
