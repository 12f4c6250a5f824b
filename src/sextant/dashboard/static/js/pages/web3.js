// Web3: transactions, success rate, unique wallets, volume by chain and token, top contracts.
import { barList, lineChart } from "../charts.js";
import { h, clear, bigAmount, empty, errorBox, loading, num, pct } from "../util.js";
import { addFilter, controls, intervalFor, query, rangeBody } from "./common.js";
import { web3Of } from "./shapes.js";

const CHAINS = { 1: "Ethereum", 10: "Optimism", 56: "BNB Chain", 137: "Polygon", 8453: "Base", 42161: "Arbitrum", 43114: "Avalanche", 11155111: "Sepolia" };
const chainName = (id) => CHAINS[id] || `Chain ${id}`;
// Display decimals of common tokens; values arrive exact, in the smallest unit.
const DECIMALS = { USDC: 6, USDT: 6, WBTC: 8 };

export async function render(main, ctx) {
  const { range, head, chips } = controls(ctx, { compare: false, title: "Web3", subtitle: "Wallet activity and on-chain transactions" });
  const interval = intervalFor(range);
  const page = h("div", { class: "page" }, head, chips, loading());
  clear(main, page);
  let res;
  try { res = await query(ctx, { kind: "web3", ...rangeBody(range), interval, limit: 10 }); } catch (e) { clear(page, head, chips, errorBox(e)); return; }
  const d = web3Of(res);
  const s = d.summary;
  if (!Number(s.tx_count) && !Number(s.unique_wallets)) {
    clear(page, head, chips, empty("No Web3 events yet",
      "Send events with type \"web3\" and a web3 object (chain_id, wallet, tx_hash, value in wei, token, status), e.g. sextant.track('tx_confirmed', …) from your dapp or from your backend."));
    return;
  }
  const card = (label, value, fmt) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, fmt(value)));
  const cards = h("div", { class: "stats" },
    card("Transactions", s.tx_count, num),
    card("Success rate", s.success_rate, pct),
    card("Failed", s.failed_count, num),
    card("Unique wallets", s.unique_wallets, num));
  const chart = h("section", { class: "card" }, h("h2", {}, "Transactions over time"),
    lineChart({ labels: d.series.labels, values: d.series.values, interval, name: "transactions" }));
  const volume = h("section", { class: "card" }, h("h2", {}, "Volume by chain and token"),
    d.volume.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Chain"), h("th", {}, "Token"), h("th", { class: "num" }, "Transactions"), h("th", { class: "num" }, "Volume"))),
      h("tbody", {}, d.volume.map((v) => h("tr", { class: "clickable", tabindex: 0, onclick: () => addFilter(ctx, "token_symbol", v.token) },
        h("td", {}, chainName(v.chain_id)), h("td", {}, v.token || "–"), h("td", { class: "num" }, num(v.tx_count)),
        h("td", { class: "num", title: `${v.volume} (smallest unit)` }, `${bigAmount(v.volume, DECIMALS[v.token] ?? 18)} ${v.token || ""}`)))))) : h("p", { class: "muted" }, "No transfers with a value."));
  const contracts = h("section", { class: "card" }, h("h2", {}, "Top contracts"),
    d.contracts.length ? barList(d.contracts.map((c) => ({ label: c.contract, value: c.count })), { onClick: (r) => addFilter(ctx, "contract_address", r.label) }) : h("p", { class: "muted" }, "No contract calls."));
  const chains = h("section", { class: "card" }, h("h2", {}, "Chains"),
    barList(d.chains.map((c) => ({ label: chainName(c.chain_id), value: c.tx_count, chain_id: c.chain_id })), { onClick: (r) => addFilter(ctx, "chain_id", Number(r.chain_id)) }));
  clear(page, head, chips, cards, chart, volume, h("div", { class: "grid grid-2" }, chains, contracts));
}
