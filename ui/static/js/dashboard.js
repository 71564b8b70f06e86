// The dashboard: renders whatever GET /api/stats returns (contract: roles, tasks, models,
// throughput, running) as tables built with textContent; refreshes when the htmx SSE extension
// reports a finished execution or a moved task. A missing endpoint (404) gets a plain empty state.
const status = document.getElementById("stats-status");
const tables = document.getElementById("stats-tables");
const select = document.getElementById("stats-project");
const TITLES = {
  roles: "Agent performance per role",
  tasks: "Tokens per task",
  models: "Models",
  throughput: "Throughput (transitions per hour)",
  running: "Running now",
};

function cell(tag, value) {
  const el = document.createElement(tag);
  el.textContent = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return el;
}

function table(name, rows) {
  const section = document.createElement("section");
  section.setAttribute("aria-label", TITLES[name] || name);
  section.append(cell("h2", TITLES[name] || name));
  if (!Array.isArray(rows) || rows.length === 0) {
    const empty = cell("p", "Nothing yet.");
    empty.className = "empty";
    section.append(empty);
    return section;
  }
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const t = document.createElement("table");
  const head = document.createElement("tr");
  for (const c of columns) head.append(cell("th", c));
  const thead = document.createElement("thead");
  thead.append(head);
  const body = document.createElement("tbody");
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) {
      let v = r[c];
      if (typeof v === "number" && !Number.isInteger(v)) v = v.toFixed(c === "pass_rate" ? 2 : 3);
      tr.append(cell("td", v));
    }
    body.append(tr);
  }
  t.append(thead, body);
  section.append(t);
  return section;
}

async function load() {
  const params = select.value ? `?project=${encodeURIComponent(select.value)}` : "";
  let response;
  try {
    response = await fetch(`/api/stats${params}`, { credentials: "same-origin" });
  } catch {
    status.textContent = "The board API is not answering.";
    return;
  }
  tables.replaceChildren();
  if (response.status === 404) {
    status.textContent = "No statistics yet: this board API has no /api/stats endpoint.";
    return;
  }
  if (!response.ok) {
    status.textContent = `Statistics are not available (${response.status}).`;
    return;
  }
  const data = await response.json();
  const names = [...Object.keys(TITLES).filter((k) => k in data), ...Object.keys(data).filter((k) => !(k in TITLES))];
  status.textContent = names.length ? "" : "No statistics yet.";
  for (const name of names) tables.append(table(name, data[name]));
}

let timer = null;
document.getElementById("stats").addEventListener("htmx:sseMessage", (event) => {
  const wanted = (event.currentTarget.dataset.refreshOn || "").split(" ");
  if (event.detail && wanted.includes(event.detail.type)) {
    clearTimeout(timer);
    timer = setTimeout(load, 500);
  }
});
select.addEventListener("change", load);
load();
