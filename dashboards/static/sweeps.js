import { api, badge, el, every, fmt, when, STATES } from "/static/common.js";

function render(sweeps) {
  const table = document.getElementById("sweeps");
  table.tHead.replaceChildren(el("tr", {},
    el("th", {}, "sweep"), el("th", {}, "status"), el("th", { class: "num" }, "trials"),
    ...STATES.map((s) => el("th", { class: "num" }, s.toLowerCase())),
    el("th", {}, "best values"), el("th", { class: "num" }, "hypervolume"),
    el("th", {}, "started"), el("th", {}, "updated")));
  table.tBodies[0].replaceChildren(...sweeps.map((s) => el("tr", { dataset: { sweep: s.id } },
    el("td", {}, el("a", { href: `/sweeps/${s.id}`, class: "sweep-name" }, s.name)),
    el("td", {}, s.status),
    el("td", { class: "num total" }, s.total),
    ...STATES.map((state) => el("td", { class: `num count-${state}` }, s.counts[state] ?? 0)),
    el("td", {}, s.objectives.map((o) => `${o.name} ${o.direction === "minimize" ? "↓" : "↑"} ${fmt(s.best[o.name])}`).join(", ")),
    el("td", { class: "num", title: s.provisional_reference ? "against a provisional reference point" : "" },
      fmt(s.hypervolume) + (s.provisional_reference && s.hypervolume !== null ? "*" : "")),
    el("td", {}, when(s.created_at)),
    el("td", {}, when(s.updated_at)))));
  document.getElementById("note").textContent = sweeps.length
    ? "* hypervolume against a provisional reference point (the sweep has not stored one yet). Updates every 3 s."
    : "No sweeps in this store yet: launch one with `hwnas sweep launch CONFIG.yaml`.";
  document.body.dataset.loaded = "1";
}

every(3000, async () => render(await api("/api/sweeps")));
