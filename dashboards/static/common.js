// Shared by the three pages. User text (names, configs, errors) only ever enters the page as text nodes
// (el() below); text handed to plotly, which reads a few HTML tags, is escaped first (plotText()).

export const STATE_COLORS = {
  COMPLETED: "#1f77b4", RUNNING: "#2ca02c", QUEUED: "#9e9e9e",
  PRUNED: "#ff7f0e", FAILED: "#d62728", INFEASIBLE: "#9467bd",
};
export const STATES = Object.keys(STATE_COLORS);

export async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: reported by status below */ }
  if (!response.ok) {
    const detail = body && body.detail;
    // A string, or FastAPI's list of validation errors (each with a msg).
    const text = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((error) => error.msg || JSON.stringify(error)).join("; ")
      : detail ? JSON.stringify(detail) : "";
    throw new Error(text || `${response.status} ${response.statusText} for ${path}`);
  }
  return body;
}

// el("a", {href: "/x", class: "c"}, "text", child): children that are strings become text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
}

export function clearError() {
  document.getElementById("error").hidden = true;
}

export function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  const size = Math.abs(value);
  return size >= 1e5 || (size < 1e-3 && size > 0) ? value.toExponential(3) : String(Number(value.toPrecision(4)));
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Plotly renders <b>, <br>, <a> ... in hover and axis text: escape user text before it goes there.
export function plotText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function badge(state) {
  return el("span", { class: `badge state-${state}` }, state);
}

// Runs fn now and then every ms milliseconds after it settles; errors are shown, and cleared by a success.
export function every(ms, fn) {
  const tick = async () => {
    try { await fn(); clearError(); } catch (error) { showError(error); }
    setTimeout(tick, ms);
  };
  return tick();
}

export const PLOT_CONFIG = { displaylogo: false, responsive: true };
