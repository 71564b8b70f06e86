// The card detail page: live output window, live state, and comments on diff lines (feedback with
// the file and line attached).
import { api, refreshPauses, toast } from "/ui/static/js/common.js";
import { activityFor } from "/ui/static/js/activity.js";
import { LogWindow } from "/ui/static/js/log.js";

const task = document.getElementById("task");
const project = task.dataset.project;
const key = task.dataset.key;
const base = `/api/projects/${encodeURIComponent(project)}/tasks/${encodeURIComponent(key)}`;
let lastId = Number.parseInt(task.dataset.lastEventId || "0", 10);
const log = new LogWindow(document.getElementById("log"), document.getElementById("older"), `${base}/output`);

function onEvent(type, message) {
  const id = Number.parseInt(message.lastEventId || "0", 10);
  if (id && id <= lastId) return;
  if (id) lastId = id;
  let data;
  try {
    data = JSON.parse(message.data);
  } catch {
    return;
  }
  if (type === "control.changed") {
    refreshPauses(project, key);
    return;
  }
  if (type === "agent.output") {
    log.append({ id, kind: data.kind, stage: data.stage, text: data.text, execution_id: data.execution_id });
  }
  const activity = activityFor(type, data);
  const indicator = document.getElementById("activity");
  if (activity) {
    indicator.textContent = activity.label;
    indicator.dataset.activity = activity.code;
  }
  if (data.task && data.task.state) {
    document.getElementById("task-state").textContent = data.task.state.replaceAll("_", " ");
    task.dataset.state = data.task.state;
    if (type === "task.state_changed" || type === "task.moved") {
      // Controls depend on the state (Approve at a gate, Retry when failed): offer a fresh view.
      const note = document.getElementById("stale") || document.createElement("p");
      note.id = "stale";
      note.className = "reason";
      note.textContent = `Now ${data.task.state.replaceAll("_", " ")} in ${data.task.stage}. `;
      const link = document.createElement("a");
      link.href = window.location.pathname;
      link.textContent = "Refresh the controls";
      note.append(link);
      task.querySelector(".controls").prepend(note);
    }
  }
}

function connect() {
  const params = new URLSearchParams({ project, task: key, after: String(lastId) });
  const source = new EventSource(`/api/events?${params}`);
  for (const type of ["agent.output", "control.changed", "task.state_changed", "task.moved", "task.updated",
    "execution.started", "execution.waiting", "execution.paused", "execution.resumed", "approval.requested"]) {
    source.addEventListener(type, (m) => onEvent(type, m));
  }
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
  window.wfEventSource = source;
}

// Comments on diff lines: a small form under the line; sent as feedback with file and line.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.comment-line");
  if (!button) return;
  const row = button.closest("tr");
  if (row.nextElementSibling && row.nextElementSibling.classList.contains("comment-row")) {
    row.nextElementSibling.querySelector("textarea").focus();
    return;
  }
  const file = button.dataset.file;
  const line = Number.parseInt(button.dataset.line, 10);
  const tr = document.createElement("tr");
  tr.className = "comment-row";
  const td = document.createElement("td");
  td.colSpan = 3;
  const form = document.createElement("form");
  form.setAttribute("aria-label", `Comment on ${file} line ${line}`);
  const label = document.createElement("label");
  label.textContent = "Comment";
  const area = document.createElement("textarea");
  area.required = true;
  area.rows = 2;
  label.append(area);
  const send = document.createElement("button");
  send.type = "submit";
  send.textContent = "Add comment";
  form.append(label, send);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    e.stopPropagation();
    try {
      await api("POST", `${base}/feedback`, { text: area.value, file, line });
      const done = document.createElement("p");
      done.className = "muted";
      done.textContent = `Comment on ${file}:${line} sent to the agent.`;
      form.replaceWith(done);
    } catch (err) {
      toast(err.message, "error");
    }
  });
  td.append(form);
  tr.append(td);
  row.after(tr);
  area.focus();
});

log.loadTail().finally(connect);
refreshPauses(project, key);
