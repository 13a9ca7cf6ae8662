import { api, badge, el, every, fmt, duration, when, plotText, PLOT_CONFIG } from "/static/common.js";

const [, , sweepId, , number] = location.pathname.split("/").map((part) => decodeURIComponent(part));
const $ = (id) => document.getElementById(id);
let trial = null;

const pairs = (rows) => rows.map(([key, value]) => el("tr", {}, el("th", {}, key), el("td", {}, value)));
const show = (v) => (typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v));

function grid(rows, columns) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => el("td", { class: typeof row[c] === "number" ? "num" : "" }, show(row[c])))))));
}

function render(sweep) {
  document.title = `trial ${trial.number} of ${sweep.name} · hwnas dashboard`;
  $("crumb").textContent = `sweep ${sweep.name}`;
  $("crumb").href = `/sweeps/${sweepId}`;
  $("title").replaceChildren(el("span", {}, `Trial ${trial.number} `), badge(trial.state));
  $("facts").replaceChildren(...pairs([
    ["epochs reached", trial.fidelity], ["origin", trial.origin], ["seed", trial.seed], ["attempts", trial.attempts],
    ["replicate of", trial.replicate_of === null ? "—" : el("a", { href: `/sweeps/${sweepId}/trials/${trial.replicate_of}` }, `#${trial.replicate_of}`)],
    ["worker", trial.worker ?? "—"], ["host", trial.host ?? "—"], ["created", when(trial.created_at)],
    ["started", when(trial.started_at)], ["finished", when(trial.finished_at)], ["duration", duration(trial.duration_s)],
    ["architecture", trial.architecture],
  ]));
  $("results").replaceChildren(...pairs(sweep.objectives.map((o) => [`${o.name} (${o.direction})`, fmt(trial.results[o.name])])));
  $("config").replaceChildren(...pairs(Object.entries(trial.params).map(([k, v]) => [k, show(v)])));
  $("error-section").hidden = !trial.full_error;
  $("trial-error").textContent = trial.full_error ?? "";
  $("export").replaceChildren(trial.export
    ? el("a", { href: trial.export.download, id: "download", download: "" }, `download ${trial.export.folder}.zip`)
    : el("span", { class: "muted" }, `not exported yet (hwnas export ${sweep.name} --trial ${trial.number})`));
  renderCurves();
  const cost = trial.cost;
  $("cost-totals").replaceChildren(cost ? grid([cost.totals ?? {}], Object.keys(cost.totals ?? {})) : el("p", { class: "muted" }, "no cost report"));
  const layers = cost?.layers ?? [];
  const columns = [...new Set(layers.flatMap((layer) => Object.keys(layer)))];
  $("cost-layers").replaceChildren(layers.length ? grid(layers, columns) : "");
  if (layers.length) $("cost-layers").firstChild.id = "layers";
  $("replicates").replaceChildren(trial.replicates.length
    ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "state"), ...sweep.objectives.map((o) => el("th", {}, o.name)))),
      el("tbody", {}, ...trial.replicates.map((r) => el("tr", {}, el("td", {}, el("a", { href: `/sweeps/${sweepId}/trials/${r.number}` }, `#${r.number}`)),
        el("td", {}, badge(r.state)), ...sweep.objectives.map((o) => el("td", { class: "num" }, fmt(r.results[o.name])))))))
    : el("p", { class: "muted" }, "no replicates (hwnas sweep confirm re-evaluates the front with other seeds)"));
  document.body.dataset.loaded = "1";
}

function renderCurves() {
  const metrics = [...new Set(trial.metrics.flatMap((row) => Object.keys(row)))].filter((k) => k !== "epoch");
  Plotly.react("curves", metrics.map((m) => ({ type: "scatter", mode: "lines+markers", name: plotText(m),
    x: trial.metrics.map((r) => r.epoch), y: trial.metrics.map((r) => r[m] ?? null) })),
  { margin: { t: 10, r: 10 }, xaxis: { title: { text: "epoch" } }, yaxis: { type: $("logcurve").checked ? "log" : "linear" } }, PLOT_CONFIG);
}

$("logcurve").addEventListener("change", () => trial && renderCurves());
const sweep = await api(`/api/sweeps/${sweepId}`).catch((error) => { $("error").textContent = error.message; $("error").hidden = false; return null; });
if (sweep) {
  // A trial still queued or running is polled until it finishes.
  every(3000, async () => {
    if (trial && ["COMPLETED", "PRUNED", "FAILED", "INFEASIBLE"].includes(trial.state)) return;
    trial = await api(`/api/sweeps/${sweepId}/trials/${number}`);
    render(sweep);
  });
}
