import {
  api, badge, el, every, fmt, duration, plotText, showError, PLOT_CONFIG, STATE_COLORS, STATES,
} from "/static/common.js";

const sweepId = Number(location.pathname.split("/")[2]);
const base = `/api/sweeps/${sweepId}`;
const points = new Map(); // trial number -> point, kept current by polling /changes
const selected = new Set();
const table = { sort: "number", order: "asc", offset: 0, limit: 25, state: "", param: "", value: "" };
let detail = null;
let front = null;
let cursor = null;
let importanceAt = 0;

const $ = (id) => document.getElementById(id);
const objectives = () => detail.objectives.map((o) => o.name);
const trialUrl = (number) => `/sweeps/${sweepId}/trials/${number}`;

function hoverText(p) {
  const config = JSON.stringify(p.params).replace(/,"/g, ", \"").match(/.{1,70}(\s|$)|\S+/g) || [];
  const results = Object.entries(p.results).map(([k, v]) => `${k} ${fmt(v)}`).join(", ");
  return plotText(`#${p.number} · ${p.state} · ${p.fidelity} epochs`) + "<br>" + plotText(p.architecture)
    + "<br>" + plotText(results) + "<br>" + config.map(plotText).join("<br>");
}

function renderHeader() {
  document.title = `${detail.name} · hwnas dashboard`;
  $("crumb").textContent = `sweep ${detail.name}`;
  $("title").replaceChildren(el("span", {}, detail.name), " ", el("span", { class: "muted" }, `(${detail.status})`));
  const counts = STATES.filter((s) => detail.counts[s]).map((s) => el("span", { class: `count-${s}` }, badge(s), ` ${detail.counts[s]} `));
  $("stats").replaceChildren(
    el("div", {}, el("b", { id: "total" }, detail.total), "trials"),
    el("div", { id: "counts" }, el("b", {}, "\u00a0"), ...counts),
    ...detail.objectives.map((o) => el("div", {}, el("b", {}, fmt(detail.best[o.name])), `best ${o.name} (${o.direction})`)),
    el("div", {}, el("b", { id: "hypervolume" }, fmt(detail.hypervolume)),
      detail.provisional_reference ? "hypervolume (provisional reference)" : "hypervolume"),
  );
  $("config").textContent = detail.config_yaml;
}

function fillSelect(select, options, keep) {
  const current = keep ? select.value : null;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  if (current && options.some(([value]) => value === current)) select.value = current;
}

function setupControls() {
  const names = objectives();
  fillSelect($("x"), names.map((n) => [n, n]));
  fillSelect($("y"), names.map((n) => [n, n]));
  $("x").value = names[names.length - 1];
  $("y").value = names[0];
  for (const id of ["x", "y"]) {
    const values = [...points.values()].map((p) => p.results[$(id).value]).filter((v) => v > 0);
    $(`log${id}`).checked = values.length > 0 && Math.max(...values) > 100 * Math.min(...values);
  }
  for (const id of ["x", "y", "colour", "logx", "logy"]) $(id).addEventListener("change", renderPareto);
  fillSelect($("state-filter"), [["", "all"], ...STATES.map((s) => [s, s.toLowerCase()])]);
  fillSelect($("param-filter"), [["", "—"], ...detail.params.map((p) => [p.name, p.name])]);
  $("state-filter").addEventListener("change", () => { table.state = $("state-filter").value; table.offset = 0; loadTable(); });
  $("apply-filter").addEventListener("click", () => {
    table.param = $("param-filter").value; table.value = $("value-filter").value; table.offset = 0; loadTable();
  });
  $("clear-filter").addEventListener("click", () => {
    Object.assign(table, { state: "", param: "", value: "", offset: 0 });
    $("state-filter").value = ""; $("param-filter").value = ""; $("value-filter").value = ""; loadTable();
  });
  $("prev").addEventListener("click", () => { table.offset = Math.max(0, table.offset - table.limit); loadTable(); });
  $("next").addEventListener("click", () => { table.offset += table.limit; loadTable(); });
  $("show-curves").addEventListener("click", () => loadCurves().catch(showError));
  $("show-compare").addEventListener("click", () => loadCompare().catch(showError));
  $("metric").addEventListener("change", renderCurves);
  $("logcurve").addEventListener("change", renderCurves);
}

function renderPareto() {
  const x = $("x").value, y = $("y").value, byState = $("colour").value === "state";
  const plotted = [...points.values()].filter((p) => p.replicate_of === null && p.results[x] != null && p.results[y] != null);
  const marker = (p) => ({ x: p.map((q) => q.results[x]), y: p.map((q) => q.results[y]), customdata: p.map((q) => q.number),
    hovertext: p.map(hoverText), hoverinfo: "text", type: "scatter", mode: "markers" });
  const traces = [];
  if (byState) {
    for (const state of STATES) {
      const group = plotted.filter((p) => p.state === state);
      if (group.length) traces.push({ ...marker(group), name: state.toLowerCase(), marker: { color: STATE_COLORS[state], size: 7, opacity: 0.75 } });
    }
  } else {
    traces.push({ ...marker(plotted), name: "trials", marker: { color: plotted.map((p) => p.fidelity), colorscale: "Viridis", size: 7,
      showscale: true, colorbar: { title: { text: "epochs" } } } });
  }
  const onFront = (front ? front.trials : []).map((n) => points.get(n)).filter(Boolean)
    .sort((a, b) => a.results[x] - b.results[x]);
  const xMin = detail.objectives.find((o) => o.name === x).direction === "minimize";
  traces.push({ ...marker(onFront), name: "Pareto front", mode: objectives().length === 2 ? "lines+markers" : "markers",
    line: { shape: xMin ? "hv" : "vh", color: "#111", width: 1.5 },
    marker: { size: 11, color: "rgba(0,0,0,0)", line: { color: "#111", width: 2 } } });
  const confirmed = (front ? front.confirmed : []).filter((c) => c.mean[x] != null && c.mean[y] != null);
  if (confirmed.length) {
    traces.push({ type: "scatter", mode: "markers", name: "confirmed (mean ± std)", customdata: confirmed.map((c) => c.number),
      x: confirmed.map((c) => c.mean[x]), y: confirmed.map((c) => c.mean[y]),
      error_x: { type: "data", array: confirmed.map((c) => c.std[x] ?? 0), visible: true },
      error_y: { type: "data", array: confirmed.map((c) => c.std[y] ?? 0), visible: true },
      hovertext: confirmed.map((c) => plotText(`#${c.number}: mean of ${c.evaluations} evaluations`)), hoverinfo: "text",
      marker: { symbol: "diamond", size: 10, color: "#2a9d8f" } });
  }
  const references = (front ? front.references : []).map((n) => points.get(n)).filter((p) => p && p.results[x] != null);
  if (references.length) {
    traces.push({ ...marker(references), name: "reference model", marker: { symbol: "star", size: 18, color: "#e63946", line: { color: "#000", width: 1 } } });
  }
  const layout = { margin: { t: 10, r: 10 }, hovermode: "closest", legend: { orientation: "h" },
    xaxis: { title: { text: plotText(x) }, type: $("logx").checked ? "log" : "linear" },
    yaxis: { title: { text: plotText(y) }, type: $("logy").checked ? "log" : "linear" }, uirevision: `${x}/${y}` };
  Plotly.react("pareto", traces, layout, PLOT_CONFIG);
  $("front-note").textContent = front
    ? `${front.trials.length} trials on the front over all ${objectives().length} objectives` + (objectives().length > 2 ? " (projected)" : "")
    : "";
  $("pareto").dataset.front = (front ? front.trials : []).join(",");
}

async function loadHypervolume() {
  const history = await api(`${base}/hypervolume`);
  const ys = history.points.map((p) => p.hypervolume);
  const text = history.points.map((p) => `trial #${p.trial}`);
  const line = { type: "scatter", mode: "lines+markers", line: { shape: "hv" }, marker: { size: 4 }, hovertext: text };
  const layout = (title) => ({ margin: { t: 10, r: 10 }, xaxis: { title: { text: title } }, yaxis: { title: { text: "hypervolume" } } });
  Plotly.react("hv-trials", [{ ...line, x: ys.map((_, i) => i + 1), y: ys }], layout("completed trials"), PLOT_CONFIG);
  Plotly.react("hv-time", [{ ...line, x: history.points.map((p) => (p.elapsed_s ?? 0) / 60), y: ys }], layout("minutes since the first trial started"), PLOT_CONFIG);
  $("hv-note").textContent = history.provisional_reference
    ? "Hypervolume against a provisional reference point derived from the trials (the sweep has not stored one yet): it can shift as trials arrive."
    : "Hypervolume normalised by the sweep's reference point.";
}

function sortHeader(label, key, numeric = true) {
  const th = el("th", { class: `sortable${numeric ? " num" : ""}`, dataset: { sort: key } }, label);
  if (table.sort === key) th.classList.add(`sorted-${table.order}`);
  th.addEventListener("click", () => {
    table.order = table.sort === key && table.order === "asc" ? "desc" : "asc";
    table.sort = key; table.offset = 0; loadTable();
  });
  return th;
}

async function loadTable() {
  const query = new URLSearchParams({ sort: table.sort, order: table.order, offset: table.offset, limit: table.limit });
  if (table.state) query.append("state", table.state);
  if (table.param) { query.append("param", table.param); query.append("value", table.value); }
  const page = await api(`${base}/trials?${query}`);
  const names = objectives();
  $("trials").tHead.replaceChildren(el("tr", {}, el("th", {}, ""), sortHeader("#", "number"), sortHeader("state", "state", false),
    sortHeader("epochs", "fidelity"), ...names.map((n) => sortHeader(n, `results.${n}`)), el("th", {}, "architecture"),
    sortHeader("duration", "duration"), el("th", {}, "error")));
  $("trials").tBodies[0].replaceChildren(...page.rows.map((p) => el("tr", { dataset: { number: p.number } },
    el("td", {}, el("input", { type: "checkbox", checked: selected.has(p.number), onchange: (e) => {
      if (e.target.checked) selected.add(p.number); else selected.delete(p.number);
      $("selected").textContent = selected.size ? [...selected].map((n) => `#${n}`).join(" ") : "none";
    } })),
    el("td", { class: "num" }, el("a", { href: trialUrl(p.number) }, p.number)),
    el("td", { class: "state" }, badge(p.state)),
    el("td", { class: "num" }, p.fidelity),
    ...names.map((n) => el("td", { class: "num", dataset: { objective: n } }, fmt(p.results[n]))),
    el("td", {}, p.architecture),
    el("td", { class: "num" }, duration(p.duration_s)),
    el("td", { class: "muted" }, p.error ?? ""))));
  const last = Math.min(page.offset + page.limit, page.total);
  $("page-info").textContent = page.total ? `trials ${page.offset + 1}–${last} of ${page.total}` : "no trials match";
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  $("trials").dataset.loaded = `${table.sort}/${table.order}/${table.state}/${table.param}=${table.value}/${table.offset}`;
}

let curves = [];
async function loadCurves() {
  if (!selected.size) throw new Error("select trials in the table first (the checkboxes)");
  curves = await api(`${base}/curves?${new URLSearchParams([...selected].map((n) => ["trial", n]))}`);
  const metrics = [...new Set(curves.flatMap((c) => c.epochs.flatMap((row) => Object.keys(row))))].filter((k) => k !== "epoch");
  fillSelect($("metric"), metrics.map((m) => [m, m]), true);
  renderCurves();
}

function renderCurves() {
  const metric = $("metric").value;
  Plotly.react("curves", curves.map((c) => ({ type: "scatter", mode: "lines+markers", name: `#${c.number}`,
    x: c.epochs.map((r) => r.epoch), y: c.epochs.map((r) => r[metric] ?? null) })),
  { margin: { t: 10, r: 10 }, xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: plotText(metric) }, type: $("logcurve").checked ? "log" : "linear" } },
  PLOT_CONFIG);
}

async function loadCompare() {
  if (selected.size < 2 || selected.size > 4) throw new Error(`compare needs 2 to 4 selected trials; ${selected.size} selected`);
  const trials = await Promise.all([...selected].map((n) => api(`${base}/trials/${n}`)));
  const params = [...new Set(trials.flatMap((t) => Object.keys(t.params)))].sort();
  const totals = [...new Set(trials.flatMap((t) => Object.keys(t.cost?.totals ?? {})))];
  const row = (label, values) => {
    const shown = values.map((v) => (typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v)));
    return el("tr", { class: new Set(shown).size > 1 ? "diff" : "" }, el("th", {}, label), ...shown.map((v) => el("td", {}, v)));
  };
  $("compare").replaceChildren(el("table", { id: "compare-table" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), ...trials.map((t) => el("th", {}, el("a", { href: trialUrl(t.number) }, `#${t.number}`))))),
    el("tbody", {},
      row("state", trials.map((t) => t.state)), row("epochs", trials.map((t) => t.fidelity)),
      ...objectives().map((n) => row(n, trials.map((t) => t.results[n]))),
      row("architecture", trials.map((t) => t.architecture)),
      ...params.map((p) => row(p, trials.map((t) => t.params[p]))),
      ...totals.map((k) => row(`cost: ${k}`, trials.map((t) => t.cost?.totals?.[k]))))));
}

async function loadImportance() {
  importanceAt = Date.now();
  const result = await api(`${base}/importance`);
  const names = Object.keys(result.objectives);
  const fit = names.map((n) => `${n}: held-out R² ${fmt(result.fit[n])}`).join("; ");
  $("importance-note").textContent = `${result.method}; ${result.trials_used} completed trials. ${fit}. ${result.note ?? ""}`;
  if (!names.length) { Plotly.purge("importance"); return; }
  const order = Object.keys(result.objectives[names[0]]).reverse();
  Plotly.react("importance", names.map((n) => ({ type: "bar", orientation: "h", name: plotText(n), y: order.map(plotText),
    x: order.map((p) => result.objectives[n][p]) })),
  { margin: { t: 10, r: 10, l: 140 }, barmode: "group", xaxis: { title: { text: "share of importance" } } }, PLOT_CONFIG);
}

function renderParcoords() {
  const done = [...points.values()].filter((p) => p.state === "COMPLETED" && p.replicate_of === null
    && objectives().every((n) => p.results[n] != null));
  if (!done.length) return;
  const shared = detail.params.filter((p) => done.every((t) => t.params[p.name] !== undefined)).slice(0, 14);
  const dims = shared.map((p) => {
    if (p.kind === "number") return { label: plotText(p.name), values: done.map((t) => t.params[p.name]) };
    const labels = p.values.map(String);
    return { label: plotText(p.name), values: done.map((t) => labels.indexOf(String(t.params[p.name]))),
      tickvals: labels.map((_, i) => i), ticktext: labels.map(plotText) };
  });
  for (const n of objectives()) dims.push({ label: plotText(n), values: done.map((t) => t.results[n]) });
  Plotly.react("parcoords", [{ type: "parcoords", dimensions: dims,
    line: { color: done.map((t) => t.results[objectives()[0]]), colorscale: "Viridis", showscale: true, reversescale: detail.objectives[0].direction === "minimize" } }],
  { margin: { t: 40, l: 60, r: 60, b: 20 } }, PLOT_CONFIG);
}

async function loadPoints() {
  let after = null;
  do {
    const page = await api(`${base}/points?limit=5000${after === null ? "" : `&after=${after}`}`);
    for (const p of page.points) points.set(p.number, p);
    after = page.next_after;
  } while (after !== null);
}

async function refreshViews() {
  [detail, front] = await Promise.all([api(base), api(`${base}/front`)]);
  renderHeader();
  renderPareto();
  await Promise.all([loadHypervolume(), loadTable()]);
  renderParcoords();
  if (Date.now() - importanceAt > 30000) loadImportance().catch(showError);
}

async function poll() {
  const changes = await api(`${base}/changes?${new URLSearchParams(cursor ? { since: cursor } : {})}`);
  let changed = false;
  for (const p of changes.points) {
    const known = points.get(p.number);
    if (!known || JSON.stringify(known) !== JSON.stringify(p)) { points.set(p.number, p); changed = true; }
  }
  cursor = changes.cursor ?? cursor;
  if (changed) await refreshViews();
  document.body.dataset.polled = String(Number(document.body.dataset.polled || 0) + 1);
}

async function start() {
  if (!Number.isInteger(sweepId)) throw new Error("no sweep id in this address");
  [detail, front] = await Promise.all([api(base), api(`${base}/front`)]);
  cursor = detail.cursor;
  await loadPoints();
  renderHeader();
  setupControls();
  renderPareto();
  $("pareto").on("plotly_click", (event) => {
    const number = event.points[0]?.customdata;
    if (number !== undefined) location.href = trialUrl(number);
  });
  await Promise.all([loadHypervolume(), loadTable()]);
  renderParcoords();
  document.body.dataset.loaded = "1";
  every(2000, poll);
  loadImportance().catch(showError); // the slowest figure: it never holds up the rest of the page
}

start().catch(showError);
