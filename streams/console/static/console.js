// spendwatch console: polls /console/api/snapshot and places the figures. No build step.
// Every figure arrives as display text from the worker (exact integers beside it as data-*
// attributes); this script only places text, so nothing here does money arithmetic.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
    "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  window.spendwatchConsole = { last: null };
  const state = { tag: null, timer: null, chart: null, chartKey: "", refreshMs: 1000,
    failures: 0 };

  function token() {
    const m = location.hash.match(/token=([^&]+)/);
    if (m) {
      sessionStorage.setItem("spendwatch-token", decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("spendwatch-token");
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // columns: [{key, label, num, nusd, badge, cls}]; rows: objects; rowKey: field for data-key
  function table(id, columns, rows, rowKey, empty) {
    const t = $(id);
    t.replaceChildren();
    const head = el("tr");
    for (const c of columns) head.append(el("th", { class: c.num ? "num" : null }, c.label));
    t.append(head);
    if (!rows.length) {
      const tr = el("tr", { class: "empty" });
      tr.append(el("td", { colspan: columns.length, class: "muted" }, empty || "nothing yet"));
      t.append(tr);
      return;
    }
    for (const row of rows) {
      const tr = el("tr", { "data-key": rowKey ? row[rowKey] : null });
      for (const c of columns) {
        const td = el("td", {
          "data-col": c.key,
          "data-nusd": c.nusd ? row[c.nusd] : null,
          class: c.num ? "num" : c.cls || null,
        });
        const value = c.get ? c.get(row) : row[c.key];
        if (c.badge) td.append(el("span", { class: "badge", "data-v": value }, value));
        else td.textContent = value === undefined || value === null ? "" : String(value);
        tr.append(td);
      }
      t.append(tr);
    }
  }

  function budgets(list) {
    const box = $("budgets");
    box.replaceChildren();
    if (!list.length) {
      box.append(el("p", { class: "muted" }, "no budget status published yet"));
      return;
    }
    for (const b of list) {
      const row = el("div", {
        class: "budget", "data-key": b.name, "data-state": b.state,
        "data-spent-nusd": b.spent_nusd, "data-limit-nusd": b.limit_nusd,
        "data-percent": b.percent, "data-updated-at": b.updated_at,
      });
      row.append(el("div", { class: "name" }, b.name));
      const bar = el("div", { class: "bar" });
      bar.append(el("div", { class: "fill", "data-state": b.state,
        style: `width: ${b.bar_percent}%` }));
      for (const mark of [50, 80, 95]) bar.append(el("div", { class: "mark", style: `left: ${mark}%` }));
      bar.append(el("span", { class: "label", "data-col": "used" },
        `${b.spent} of ${b.limit} (${b.percent})`));
      row.append(bar);
      const info = el("div");
      info.append(el("span", { class: "badge", "data-v": b.state, "data-col": "state" }, b.state));
      const lines = [];
      if (b.runout_at) lines.push(["runout", `runs out ${b.runout_at}`]);
      lines.push(["reset", `resets ${b.reset_at}`]);
      if (b.override_until) lines.push(["override", `override until ${b.override_until}`]);
      for (const [col, text] of lines) {
        info.append(el("br"));
        info.append(el("span", { class: "muted", "data-col": col }, text));
      }
      row.append(info);
      box.append(row);
    }
  }

  function chart(minutes) {
    const box = $("chart");
    const names = Object.keys(minutes.series).sort();
    const key = names.join("|");
    const data = [minutes.t, ...names.map((n) => minutes.series[n].map((v) => v / 1e9))];
    if (!names.length) {
      if (state.chart) { state.chart.destroy(); state.chart = null; }
      box.replaceChildren(el("p", { class: "muted" }, "no spend in the last hour"));
      state.chartKey = "";
      return;
    }
    if (state.chart && state.chartKey === key) { state.chart.setData(data); return; }
    if (state.chart) state.chart.destroy();
    box.replaceChildren();
    const money = (u, v) => (v === null || v === undefined ? "—" : "$" + v.toFixed(4));
    state.chart = new uPlot({
      width: Math.max(box.clientWidth - 10, 300), height: 240,
      scales: { x: { time: true } },
      series: [{}, ...names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 2, value: money,
      }))],
      axes: [{}, { values: (u, vals) => vals.map((v) => "$" + v.toFixed(3)), size: 70 }],
    }, data, box);
    state.chartKey = key;
  }

  function spend(dim, id, snap) {
    const today = Object.fromEntries(snap.spend.today[dim].map((r) => [r.name, r]));
    const rows = snap.spend.month[dim].map((m) => {
      const t = today[m.name] || { cost: "$0.0000", cost_nusd: 0, calls: 0 };
      return { name: m.name, today: t.cost, today_nusd: t.cost_nusd, today_calls: t.calls,
        month: m.cost, month_nusd: m.cost_nusd, month_calls: m.calls, per_call: m.per_call };
    });
    table(id, [
      { key: "name", label: dim === "tag" ? snap.tag : dim },
      { key: "today", label: "today", num: true, nusd: "today_nusd" },
      { key: "today_calls", label: "calls", num: true },
      { key: "month", label: "this month", num: true, nusd: "month_nusd" },
      { key: "month_calls", label: "calls", num: true },
      { key: "per_call", label: "per call", num: true },
    ], rows, "name");
  }

  function render(snap) {
    window.spendwatchConsole.last = snap; // the latest snapshot, for a look from devtools
    state.refreshMs = snap.refresh_ms || 1000;
    $("generated-at").textContent = snap.generated_at;
    $("generated-at").dataset.value = snap.generated_at;
    $("day").textContent = snap.day + " UTC";
    $("month").textContent = snap.month;
    budgets(snap.budgets);
    chart(snap.minutes);

    const tot = (scope, id, callsId) => {
      $(id).textContent = snap.spend[scope].total;
      $(id).dataset.nusd = snap.spend[scope].total_nusd;
      $(callsId).textContent = `${snap.spend[scope].calls} calls`;
      $(callsId).dataset.value = snap.spend[scope].calls;
    };
    tot("today", "total-today", "calls-today");
    tot("month", "total-month", "calls-month");

    table("units", [
      { key: "unit", label: "per" },
      { key: "tu", label: "today: units", num: true, get: (r) => r.today.units },
      { key: "tp", label: "cost each", num: true, get: (r) => r.today.per_unit },
      { key: "mu", label: "month: units", num: true, get: (r) => r.month.units },
      { key: "mp", label: "cost each", num: true, get: (r) => r.month.per_unit },
    ], snap.units, "unit");

    $("cache-rate").textContent = snap.cache.hit_rate;
    $("cache-avoided").textContent = snap.cache.avoided;
    $("cache-avoided").dataset.nusd = snap.cache.avoided_nusd;
    table("cache", [
      { key: "name", label: "service" },
      { key: "hits", label: "hits", num: true },
      { key: "calls", label: "calls", num: true },
      { key: "hit_rate", label: "hit rate", num: true },
      { key: "avoided", label: "avoided", num: true, nusd: "avoided_nusd" },
    ], snap.cache.by_service, "name", "no cache hits today");
    table("errors", [
      { key: "name", label: "provider" },
      { key: "errors", label: "errors", num: true },
      { key: "calls", label: "calls", num: true },
      { key: "error_rate", label: "error rate", num: true },
    ], snap.errors, "name");

    spend("service", "by-service", snap);
    spend("model", "by-model", snap);
    spend("provider", "by-provider", snap);
    spend("tag", "by-tag", snap);
    $("tag-name").textContent = snap.tag;
    picker(snap.tags, snap.tag);

    $("alerts-open").textContent = snap.alerts.open_count;
    $("alerts-resolved").textContent = snap.alerts.resolved_count;
    table("alerts", [
      { key: "updated_at", label: "time" },
      { key: "status", label: "status", badge: true },
      { key: "severity", label: "severity", badge: true },
      { key: "kind", label: "kind" },
      { key: "title", label: "title", cls: "reason" },
    ], snap.alerts.recent, "id", "no alerts in the last 24 h");

    $("dead-count").textContent = snap.deadletters.today_count;
    $("dead-reasons").textContent = snap.deadletters.today
      .map((r) => `${r.code}: ${r.count}`).join(" · ");
    table("deadletters", [
      { key: "received_at", label: "received" },
      { key: "code", label: "reason" },
      { key: "topic", label: "from" },
      { key: "reason", label: "detail", cls: "reason" },
    ], snap.deadletters.recent, null, "no dead letters");
  }

  function picker(tags, current) {
    const sel = $("tag-picker");
    const have = Array.from(sel.options).map((o) => o.value).join("|");
    if (have !== tags.join("|")) {
      sel.replaceChildren(...tags.map((t) => el("option", { value: t }, t)));
    }
    sel.value = current;
  }

  function live(status, text) {
    $("live").dataset.state = status;
    $("live").textContent = text;
  }

  async function poll() {
    clearTimeout(state.timer);
    const url = "/console/api/snapshot" + (state.tag ? "?tag=" + encodeURIComponent(state.tag) : "");
    const headers = {};
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    try {
      const resp = await fetch(url, { headers, cache: "no-store" });
      if (resp.status === 401) {
        $("token-form").hidden = false;
        live("error", "token needed");
        return; // the form restarts polling
      }
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.error || "HTTP " + resp.status);
      $("error").hidden = true;
      state.failures = 0;
      render(body);
      live("live", "live");
    } catch (err) {
      state.failures += 1;
      $("error").hidden = false;
      $("error").textContent = "cannot refresh: " + err.message + " (retrying)";
      live(state.failures > 2 ? "error" : "stale", "stale");
    }
    state.timer = setTimeout(poll, state.refreshMs);
  }

  $("tag-picker").addEventListener("change", (e) => { state.tag = e.target.value; poll(); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("spendwatch-token", $("token-input").value);
    $("token-form").hidden = true;
    poll();
  });
  window.addEventListener("resize", () => {
    if (state.chart) state.chart.setSize({ width: Math.max($("chart").clientWidth - 10, 300), height: 240 });
  });
  poll();
})();
