// Adapters from the analytics API's JSON to what the charts draw: kept in one place.

/** [{label, value, previous}] from a list of breakdown rows or a {label: count} object. */
export function rowsOf(x) {
  if (!x) return [];
  if (x.rows) x = x.rows;
  else if (x.results) x = x.results;
  else if (x.items) x = x.items;
  if (!Array.isArray(x)) {
    if (typeof x === "object") return Object.entries(x).map(([label, value]) => ({ label, value: typeof value === "object" ? value.value ?? value.count : value }));
    return [];
  }
  return x.map((r) => ({
    ...r,
    label: r.label ?? r.value_label ?? r.key ?? r.name ?? r.breakdown ?? r.dimension ?? r.value,
    value: r.count ?? r.visitors ?? r.persons ?? r.events ?? r.total ?? (typeof r.value === "number" ? r.value : 0),
    previous: r.previous ?? r.previous_count ?? r.previous_value,
  }));
}

/** {name: {value, previous, change}} from a trends answer. */
export function trendTotals(res) {
  const out = {};
  for (const s of (res && res.series) || []) {
    const name = s.name || s.label;
    out[name] = { value: s.total ?? s.value, previous: s.previous_total ?? s.previous, change: s.change_percent ?? s.change };
  }
  return out;
}

/** {labels, values, previous} for one named series of a trends answer. */
export function trendSeries(res, name) {
  const s = ((res && res.series) || []).find((x) => (x.name || x.label) === name) || {};
  const points = s.points || s.data || [];
  return {
    labels: points.map((p) => p.bucket ?? p.date ?? p.t),
    values: points.map((p) => Number(p.value ?? p.count ?? 0)),
    previous: (s.previous_points || []).map((p) => Number(p.value ?? p.count ?? 0)),
  };
}

/** Events of an activity-feed answer. */
export function eventRows(res) {
  if (!res) return [];
  return res.events || res.results || res.items || (Array.isArray(res) ? res : []);
}

/** {name, ids, first_seen, last_seen, total_events, traits, events} from a person answer. */
export function personOf(res) {
  const p = (res && (res.person || res.profile)) || res || {};
  const traits = p.traits || p.properties || (res && res.traits) || {};
  return {
    name: traits.name || traits.email || p.person_id,
    ids: p.distinct_ids || p.ids || (res && res.distinct_ids) || [],
    first_seen: p.first_seen, last_seen: p.last_seen,
    total_events: p.total_events ?? p.event_count,
    traits,
    events: (res && (res.events || res.recent_events || res.journey)) || p.events || [],
  };
}

/** Funnel steps with counts and rates. */
export function funnelSteps(res, names) {
  const steps = (res && (res.steps || res.results)) || [];
  return steps.map((s, i) => ({
    name: s.name || s.event || names[i],
    count: s.count ?? s.persons ?? 0,
    conversion_from_first: s.conversion_from_first ?? s.conversion_rate,
    conversion_from_previous: s.conversion_from_previous ?? s.step_conversion,
    drop_off: s.drop_off ?? s.dropped,
    median_seconds: s.median_seconds ?? s.median_time_to_convert_seconds ?? s.median_time_seconds,
  }));
}

/** {cohorts: [{label, size, values: [percent]}], rates} from a retention answer. */
export function retentionOf(res) {
  const cohorts = ((res && (res.cohorts || res.table)) || []).map((c) => ({
    label: c.label || c.cohort || c.date,
    size: c.size ?? c.persons ?? 0,
    values: (c.values || c.percentages || c.rates || c.retention || []).map((v) => (v === null || typeof v !== "object" ? v : v.percent ?? v.rate)),
  }));
  return { cohorts, rates: (res && (res.rates || res.summary)) || {} };
}

/** {summary, previous, endpoints, series: {labels, count, error_rate, p50, p95, p99}} */
export function apiOf(res) {
  const summary = (res && res.summary) || {};
  const points = (res && (res.series || res.timeseries)) || [];
  const pick = (k) => points.map((p) => Number(p[k] ?? 0));
  return {
    summary,
    previous: (res && res.previous) || summary.previous || null,
    endpoints: ((res && res.endpoints) || []).map((e) => ({ ...e, count: e.count ?? e.request_count })),
    series: {
      labels: points.map((p) => p.bucket ?? p.date),
      count: pick("request_count").some(Boolean) ? pick("request_count") : pick("count"),
      error_rate: pick("error_rate"), p50: pick("p50"), p95: pick("p95"), p99: pick("p99"),
    },
  };
}

/** {summary, previous, volume, chains, contracts, series} from a web3 answer. */
export function web3Of(res) {
  const r = res || {};
  const summary = r.summary || {};
  const volume = (r.volume || []).map((v) => ({ ...v, token: v.token ?? v.token_symbol, tx_count: v.tx_count ?? v.count }));
  const byChain = {};
  for (const v of volume) byChain[v.chain_id] = (byChain[v.chain_id] || 0) + Number(v.tx_count || 0);
  const points = r.series || [];
  return {
    summary: { ...summary, tx_count: summary.tx_count ?? summary.transactions, events: summary.events ?? summary.event_count },
    previous: r.previous || summary.previous || null,
    volume,
    chains: r.chains || Object.entries(byChain).map(([chain_id, tx_count]) => ({ chain_id, tx_count })).sort((a, b) => b.tx_count - a.tx_count),
    contracts: (r.contracts || []).map((c) => ({ contract: c.contract ?? c.contract_address, count: c.count ?? c.tx_count })),
    series: { labels: points.map((p) => p.bucket ?? p.date), values: points.map((p) => Number(p.tx_count ?? p.count ?? 0)) },
  };
}
