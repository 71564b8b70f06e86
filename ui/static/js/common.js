// Shared by every page: the CSRF header on every state-changing request, JSON API calls from
// buttons (data-post) and forms (data-api), a toast for results and errors. Untrusted text is only
// ever put into the page with textContent.

export function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("wf_csrf="));
  if (cookie) return decodeURIComponent(cookie.slice("wf_csrf=".length));
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") || "" : "";
}

export class ApiError extends Error {}

export async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.message ? data.message : `${method} ${url} failed (${response.status})`;
    throw new ApiError(message);
  }
  return data;
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 8000);
}

function formBody(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    const raw = field.value;
    const type = field.dataset.type;
    if (type === "int") {
      if (raw.trim() !== "") body[field.name] = Number.parseInt(raw, 10);
    } else if (type === "lines") {
      body[field.name] = raw.split("\n").map((s) => s.trim()).filter(Boolean);
    } else if (type === "list") {
      body[field.name] = raw.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    } else if (raw !== "" || field.required) {
      body[field.name] = raw;
    }
  }
  return body;
}

function then(how, values) {
  if (!how) return;
  if (how === "reload") window.location.reload();
  else if (how.startsWith("goto:")) {
    const target = how.slice(5).replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(values[k] || ""));
    if (target.startsWith("/")) window.location.assign(target);
  }
}

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const body = formBody(form);
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  try {
    await api(form.dataset.method || "POST", form.dataset.api, body);
    toast("Done.");
    if (form.dataset.then === "reset") form.reset();
    else then(form.dataset.then, body);
  } catch (err) {
    toast(err.message, "error");
  } finally {
    if (button) button.disabled = false;
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-post]");
  if (!button) return;
  button.disabled = true;
  try {
    await api("POST", button.dataset.post);
    toast(`${button.textContent.trim()}: done.`);
    then(button.dataset.then, {});
  } catch (err) {
    toast(err.message, "error");
  } finally {
    button.disabled = false;
  }
});

// htmx requests (fragments) carry the token too, should one ever change state.
document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRF-Token"] = csrfToken();
});

// Which pause is in effect for what this page shows (`project`, and `key` on a card page): the
// global one, the project's, or this project's paused tasks (GET /api/control lists every scope).
export function pauseLabel(control, project, key) {
  if (control.paused) return "Paused: everything";
  if (project && (control.paused_projects || []).includes(project)) return "Paused: this project";
  const tasks = (control.paused_tasks || []).filter((t) => t.project === project).map((t) => t.key);
  if (key) return tasks.includes(key) ? "Paused: this task" : "Running";
  if (tasks.length) return `Paused: ${tasks.length === 1 ? "task" : "tasks"} ${tasks.join(", ")}`;
  return "Running";
}

export function setPaused(paused) {
  document.body.classList.toggle("is-paused", paused);
}

let pauseGeneration = 0;
export async function refreshPauses(project, key) {
  const generation = ++pauseGeneration;
  let control;
  try {
    control = await api("GET", "/api/control");
  } catch {
    return; // the label keeps what it showed; the next control.changed tries again
  }
  if (generation !== pauseGeneration) return; // a newer answer is on its way
  const label = document.getElementById("paused-state");
  const text = pauseLabel(control, project, key);
  if (label) label.textContent = text;
  setPaused(Boolean(control.paused));
  document.body.classList.toggle("is-scope-paused", text !== "Running");
}
