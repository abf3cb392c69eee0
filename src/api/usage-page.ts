// GET /usage: a key holder's usage page (docs/BILLING.md). One self-contained HTML page — no external
// assets, a strict Content-Security-Policy (its one inline script and style carry a per-response nonce).
// The key is typed into a password field, kept in memory and sessionStorage only, and sent as
// `Authorization: Bearer` to /v1/key and /v1/usage; it never goes into a URL. The script draws SVG bar
// charts by UTC day (spend, requests, tokens, savings), a totals table by model and the key's budget.
// Pure strings and Web APIs: the same on Node and workerd.
import type { Hono } from "hono";

/** A fresh CSP nonce (128 random bits, base64). */
function nonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

export const usagePageCsp = (n: string) =>
  ["default-src 'none'", `script-src 'nonce-${n}'`, `style-src 'nonce-${n}'`, "connect-src 'self'", "img-src data:", "form-action 'none'", "base-uri 'none'", "frame-ancestors 'none'"].join("; ");

const STYLE = `
:root { color-scheme: light; --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --accent:#2f6fdf; --accent2:#8fb3f0; --good:#1f8a4c; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
p.lead { margin: 0 0 16px; color: var(--muted); }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
label { display: flex; flex-direction: column; font-size: 13px; color: var(--muted); gap: 4px; }
input, select, button { font: inherit; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--fg); }
input[type=password] { width: 30em; max-width: 80vw; }
button { background: var(--accent); border-color: var(--accent); color: #fff; cursor: pointer; }
button.plain { background: #fff; color: var(--fg); border-color: var(--line); }
.msg { margin: 12px 0; padding: 10px 12px; border-radius: 6px; }
.msg.error { background: #fdecea; color: var(--bad); border: 1px solid #f3c1bc; }
.msg.info { background: #eef3fd; color: #1c3f7a; border: 1px solid #c9d8f6; }
.hidden { display: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 8px; margin: 16px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .k { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 12px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { display: block; width: 100%; height: auto; }
svg text { font-size: 10px; fill: var(--muted); }
svg text.empty { font-size: 13px; }
svg .axis { stroke: var(--line); }
svg .bar { fill: var(--accent); }
svg .bar.second { fill: var(--accent2); }
svg .bar.saving { fill: var(--good); }
.legend { font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; border-radius: 2px; background: var(--accent); }
.legend i.second { background: var(--accent2); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; margin-top: 16px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
tfoot td { font-weight: 600; border-bottom: 0; }
`;

// The page's script (plain ES2017, no dependencies). Runs under the CSP above: it builds the SVGs with
// DOM calls (no innerHTML from data, no style attributes) and talks only to this origin.
const SCRIPT = `
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var STORE = "alia-usage-key";
  var key = null;
  try { key = sessionStorage.getItem(STORE); } catch (e) { key = null; }
  var $ = function (id) { return document.getElementById(id); };
  var form = $("key-form"), input = $("key"), range = $("range"), msg = $("message"), out = $("report"), forget = $("forget");

  function show(el, on) { el.classList.toggle("hidden", !on); }
  function message(kind, text) { msg.className = "msg " + kind; msg.textContent = text; show(msg, !!text); }
  function el(ns, name, attrs, text) {
    var e = ns ? document.createElementNS(ns, name) : document.createElement(name);
    for (var a in attrs || {}) e.setAttribute(a, attrs[a]);
    if (text != null) e.textContent = text;
    return e;
  }
  function euro(v) {
    if (v == null) return "—";
    // Up to micro-euros (the ledger's unit), at least cents: €5.00, €4.999952, €0.000048.
    return "€" + v.toFixed(6).replace(/(\\.\\d\\d\\d*?)0+$/, "$1");
  }
  function int(v) { return Math.round(v).toLocaleString("en-US"); }
  function day(d) { return d.toISOString().slice(0, 10); }

  async function get(path) {
    var r = await fetch(path, { headers: { authorization: "Bearer " + key }, cache: "no-store", credentials: "omit" });
    var body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body: body };
  }

  function failure(res) {
    if (res.status === 401) return "Wrong API key: this key is not valid (check it, or it may have been revoked).";
    if (res.status === 403) return "This key may not read its usage.";
    if (res.status === 404) return "This key has no account (a static API_KEYS key): no budget or usage is kept for it.";
    var m = res.body && res.body.error && res.body.error.message;
    return "Could not load usage (HTTP " + res.status + (m ? ": " + m : "") + ").";
  }

  function barChart(id, title, days, series, fmt) {
    var W = 480, H = 200, L = 72, R = 8, T = 10, B = 34;
    var max = 0;
    days.forEach(function (d) { var s = 0; series.forEach(function (x) { s += x.value(d); }); if (s > max) max = s; });
    var svg = el(SVG, "svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title, "data-chart": id });
    var fig = el(null, "figure", { id: "chart-" + id });
    fig.appendChild(el(null, "figcaption", {}, title));
    if (series.length > 1) {
      var leg = el(null, "div", { class: "legend" });
      series.forEach(function (s) { leg.appendChild(el(null, "i", { class: s.cls })); leg.appendChild(document.createTextNode(s.label)); });
      fig.appendChild(leg);
    }
    var plotW = W - L - R, plotH = H - T - B;
    var y = function (v) { return T + plotH - (max > 0 ? (v / max) * plotH : 0); };
    (max > 0 ? [0, 0.5, 1] : [0]).forEach(function (f) {
      var v = max * f, yy = y(v);
      if (fmt === int && v !== Math.round(v)) return;
      svg.appendChild(el(SVG, "line", { class: "axis", x1: L, x2: W - R, y1: yy, y2: yy }));
      svg.appendChild(el(SVG, "text", { x: L - 4, y: yy + 3, "text-anchor": "end" }, fmt(v)));
    });
    var step = plotW / days.length, bw = Math.max(1, step * 0.75);
    var every = Math.ceil(days.length / 8);
    days.forEach(function (d, i) {
      var x = L + i * step + (step - bw) / 2, base = 0;
      series.forEach(function (s) {
        var v = s.value(d);
        if (v > 0) {
          var top = y(base + v), h = y(base) - top;
          var r = el(SVG, "rect", { class: "bar " + s.cls, x: x.toFixed(2), y: top.toFixed(2), width: bw.toFixed(2), height: Math.max(h, 0.5).toFixed(2), "data-day": d.day });
          r.appendChild(el(SVG, "title", {}, d.day + " — " + s.label + ": " + fmt(v)));
          svg.appendChild(r);
        }
        base += v;
      });
      if (i % every === 0) svg.appendChild(el(SVG, "text", { x: (L + i * step + step / 2).toFixed(2), y: H - B + 14, "text-anchor": "middle" }, d.day.slice(5)));
    });
    if (max === 0) svg.appendChild(el(SVG, "text", { x: L + plotW / 2, y: T + plotH / 2, "text-anchor": "middle", class: "empty" }, "none in this period"));
    fig.appendChild(svg);
    return fig;
  }

  function card(k, v, id) {
    var c = el(null, "div", { class: "card" });
    c.appendChild(el(null, "div", { class: "k" }, k));
    c.appendChild(el(null, "div", { class: "v", id: id }, v));
    return c;
  }

  function render(me, usage) {
    out.textContent = "";
    var byDay = {}, byModel = {}, total = { requests: 0, prompt_tokens: 0, completion_tokens: 0, target_passes: 0, cost: 0, saving: 0 };
    var fields = Object.keys(total);
    usage.data.forEach(function (r) {
      var d = byDay[r.day] || (byDay[r.day] = { requests: 0, prompt_tokens: 0, completion_tokens: 0, target_passes: 0, cost: 0, saving: 0 });
      var m = byModel[r.model] || (byModel[r.model] = { requests: 0, prompt_tokens: 0, completion_tokens: 0, target_passes: 0, cost: 0, saving: 0 });
      fields.forEach(function (f) { d[f] += r[f]; m[f] += r[f]; total[f] += r[f]; });
    });
    var days = [];
    for (var t = Date.parse(usage.from + "T00:00:00Z"), end = Date.parse(usage.to + "T00:00:00Z"); t <= end; t += 86400000) {
      var k = day(new Date(t)), v = byDay[k] || { requests: 0, prompt_tokens: 0, completion_tokens: 0, target_passes: 0, cost: 0, saving: 0 };
      v.day = k;
      days.push(v);
    }

    var cards = el(null, "div", { class: "cards" });
    cards.appendChild(card("Key", me.name + " (" + me.key_id + ")", "key-name"));
    cards.appendChild(card("Budget" + (me.budget_period ? " / " + me.budget_period : ""), me.budget == null ? "no limit" : euro(me.budget), "budget"));
    cards.appendChild(card("Spent", euro(me.spent), "spent"));
    cards.appendChild(card("Remaining", me.remaining == null ? "no limit" : euro(me.remaining), "remaining"));
    out.appendChild(cards);

    if (usage.data.length === 0) {
      message("info", "No traffic for this key between " + usage.from + " and " + usage.to + ": nothing to chart yet.");
      show(out, true);
      return;
    }
    message("", "");
    var charts = el(null, "div", { class: "charts" });
    charts.appendChild(barChart("spend", "Spend (€) by day", days, [{ label: "spend", cls: "", value: function (d) { return d.cost; } }], euro));
    charts.appendChild(barChart("requests", "Requests by day", days, [{ label: "requests", cls: "", value: function (d) { return d.requests; } }], int));
    charts.appendChild(
      barChart("tokens", "Tokens by day", days, [
        { label: "prompt", cls: "", value: function (d) { return d.prompt_tokens; } },
        { label: "completion", cls: "second", value: function (d) { return d.completion_tokens; } },
      ], int),
    );
    charts.appendChild(barChart("savings", "Savings from speculation (€) by day", days, [{ label: "saving", cls: "saving", value: function (d) { return d.saving; } }], euro));
    out.appendChild(charts);

    var table = el(null, "table", { id: "totals" });
    var head = el(null, "tr");
    ["Model", "Requests", "Prompt tokens", "Completion tokens", "Target passes", "Spend", "Saving"].forEach(function (h) { head.appendChild(el(null, "th", {}, h)); });
    table.appendChild(el(null, "thead")).appendChild(head);
    function row(name, r, attrs) {
      var tr = el(null, "tr", attrs);
      tr.appendChild(el(null, "td", {}, name));
      tr.appendChild(el(null, "td", { "data-field": "requests" }, int(r.requests)));
      tr.appendChild(el(null, "td", { "data-field": "prompt_tokens" }, int(r.prompt_tokens)));
      tr.appendChild(el(null, "td", { "data-field": "completion_tokens" }, int(r.completion_tokens)));
      tr.appendChild(el(null, "td", { "data-field": "target_passes" }, int(r.target_passes)));
      tr.appendChild(el(null, "td", { "data-field": "cost" }, euro(r.cost)));
      tr.appendChild(el(null, "td", { "data-field": "saving" }, euro(r.saving)));
      return tr;
    }
    var body = table.appendChild(el(null, "tbody"));
    Object.keys(byModel).sort().forEach(function (m) { body.appendChild(row(m, byModel[m])); });
    table.appendChild(el(null, "tfoot")).appendChild(row("Total", total, { id: "total-row" }));
    out.appendChild(table);
    show(out, true);
  }

  async function load() {
    show(out, false);
    message("info", "Loading…");
    var to = new Date(), from = new Date(to.getTime() - (Number(range.value) - 1) * 86400000);
    try {
      var me = await get("/v1/key");
      if (me.status !== 200) { message("error", failure(me)); return; }
      var usage = await get("/v1/usage?from=" + day(from) + "&to=" + day(to));
      if (usage.status !== 200) { message("error", failure(usage)); return; }
      render(me.body, usage.body);
      show(forget, true);
      document.body.setAttribute("data-state", "loaded");
    } catch (e) {
      message("error", "Could not reach the server: " + (e && e.message ? e.message : e));
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    key = input.value.trim();
    input.value = "";
    if (!key) { message("error", "Enter your API key."); return; }
    try { sessionStorage.setItem(STORE, key); } catch (e) {}
    load();
  });
  range.addEventListener("change", function () { if (key) load(); });
  forget.addEventListener("click", function () {
    key = null;
    try { sessionStorage.removeItem(STORE); } catch (e) {}
    out.textContent = "";
    show(out, false);
    show(forget, false);
    message("info", "The key is forgotten in this tab.");
  });
  if (key) load();
})();
`;

export function usagePageHtml(n: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ALIA edge — usage</title>
<link rel="icon" href="data:,">
<style nonce="${n}">${STYLE}</style>
</head>
<body>
<main>
<h1>Usage</h1>
<p class="lead">Spend, requests, tokens and savings of your API key by UTC day. The key stays in this browser tab (memory and sessionStorage); it is only sent to this server as an Authorization header.</p>
<form id="key-form" autocomplete="off">
<label>API key <input id="key" type="password" autocomplete="off" spellcheck="false" placeholder="sk-alia-…" required></label>
<label>Period <select id="range"><option value="7">last 7 days</option><option value="30" selected>last 30 days</option><option value="90">last 90 days</option></select></label>
<button type="submit" id="show">Show usage</button>
<button type="button" id="forget" class="plain hidden">Forget key</button>
</form>
<div id="message" class="msg hidden" role="status" aria-live="polite"></div>
<section id="report" class="hidden"></section>
</main>
<script nonce="${n}">${SCRIPT}</script>
</body>
</html>
`;
}

/** Registers GET /usage on the app (outside /v1: the page itself needs no key; its script sends one). */
export function registerUsagePage(app: Hono): void {
  app.get("/usage", (c) => {
    const n = nonce();
    return c.html(usagePageHtml(n), 200, {
      "Content-Security-Policy": usagePageCsp(n),
      "Cache-Control": "no-store",
      "Referrer-Policy": "no-referrer",
      "X-Content-Type-Options": "nosniff",
      "X-Frame-Options": "DENY",
    });
  });
}
