// The live board: cards move between columns as events arrive (FLIP animation), reconnects resume
// from the last event seen (EventSource sends Last-Event-ID), drag and drop asks the orchestrator
// to move a card and snaps it back with the reason when refused. The keyboard's way is each card's
// "Move <key>…" button: a dialog to pick the column, the same move command, the result announced
// (the toast is role=alert), and focus back on the card's button.
import Sortable from "/ui/static/vendor/sortable.esm.js";
import { api, refreshPauses, toast } from "/ui/static/js/common.js";
import { activityFor } from "/ui/static/js/activity.js";

const board = document.getElementById("board");
const project = board.dataset.project;
let lastId = Number.parseInt(board.dataset.lastEventId || "0", 10);
const fetches = new Map(); // key -> generation: only the newest answer for a card is applied

const TASK_EVENTS = new Set([
  "task.created", "task.updated", "task.moved", "task.state_changed", "approval.requested",
  "approval.granted", "approval.rejected", "bug.created", "bug.fixed", "bug.killed",
  "execution.finished",
]);

function column(name) {
  return board.querySelector(`.cards[data-column="${CSS.escape(name)}"]`);
}

function card(key) {
  return document.getElementById(`card-${key}`);
}

// First-Last-Invert-Play: measure, move, then animate from the old place to the new one.
function flip(elements, change) {
  const before = new Map(elements.map((el) => [el, el.getBoundingClientRect()]));
  change();
  for (const [el, first] of before) {
    if (!el.isConnected) continue;
    const last = el.getBoundingClientRect();
    const dx = first.left - last.left;
    const dy = first.top - last.top;
    if (dx || dy) {
      el.animate([{ transform: `translate(${dx}px, ${dy}px)` }, { transform: "none" }], {
        duration: 250,
        easing: "ease-out",
      });
    }
  }
}

function place(fresh) {
  const key = fresh.dataset.key;
  const target = column(fresh.dataset.column);
  const old = card(key);
  if (!target) return;
  const activity = old && old.querySelector(".activity");
  const freshActivity = fresh.querySelector(".activity");
  const keepLive =
    activity && activity.dataset.live === "1" && fresh.dataset.state === "running" &&
    activity.dataset.activity !== "paused" && freshActivity.dataset.activity !== "paused";
  if (keepLive) {
    const span = fresh.querySelector(".activity");
    span.textContent = activity.textContent;
    span.dataset.activity = activity.dataset.activity;
    span.dataset.live = "1";
  }
  // A keyboard user's place survives the swap: focus goes to the same control in the fresh card.
  const focused = old && old.contains(document.activeElement) ? document.activeElement : null;
  const movers = [...target.querySelectorAll(".card")];
  if (old) movers.push(old);
  flip(movers, () => {
    if (old && old.parentElement === target) old.replaceWith(fresh);
    else {
      if (old) old.remove();
      target.append(fresh);
    }
  });
  const moved = card(key);
  if (focused && moved) {
    const same = focused.classList.contains("move-card") ? moved.querySelector(".move-card") : moved.querySelector("h3 a");
    if (same) same.focus({ preventScroll: true });
  }
  if (moved && old && old.parentElement !== target) {
    moved.animate([{ opacity: 0.3 }, { opacity: 1 }], { duration: 250 });
  }
  updateCounts();
}

async function refresh(key) {
  const generation = (fetches.get(key) || 0) + 1;
  fetches.set(key, generation);
  const response = await fetch(`/ui/projects/${encodeURIComponent(project)}/tasks/${encodeURIComponent(key)}/card`, {
    credentials: "same-origin",
  });
  if (fetches.get(key) !== generation) return; // a newer refresh of this card is on its way
  if (response.status === 204) {
    const old = card(key);
    if (old) old.remove();
    updateCounts();
    return;
  }
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = doc.querySelector("article.card");
  if (fresh) place(document.adoptNode(fresh));
}

export function updateCounts() {
  const cards = [...board.querySelectorAll(".card")];
  const counts = {
    completed: cards.filter((c) => c.dataset.state === "done").length,
    failed: cards.filter((c) => c.dataset.state === "failed" || c.dataset.state === "needs_human").length,
    approval: cards.filter((c) => c.dataset.state === "awaiting_approval").length,
  };
  const words = { completed: "completed", failed: "failed", approval: "waiting for approval" };
  for (const [name, n] of Object.entries(counts)) {
    const badge = document.querySelector(`[data-count="${name}"]`);
    if (badge) badge.textContent = `${n} ${words[name]}`;
  }
  const base = document.title.replace(/^\(\d+\) /, "");
  const attention = counts.failed + counts.approval;
  document.title = attention ? `(${attention}) ${base}` : base;
  board.dataset.synced = String(lastId);
}

function setActivity(key, activity) {
  const el = card(key);
  if (!el || !activity) return;
  const span = el.querySelector(".activity");
  span.textContent = activity.label;
  span.dataset.activity = activity.code;
  span.dataset.live = "1";
  span.className = `activity act-${activity.code}`;
}

function onEvent(type, message) {
  const id = Number.parseInt(message.lastEventId || "0", 10);
  if (id && id <= lastId) return; // never twice
  if (id) lastId = id;
  let data;
  try {
    data = JSON.parse(message.data);
  } catch {
    return;
  }
  board.dataset.lastSeen = String(lastId);
  if (type === "control.changed") {
    refreshPauses(project); // global, project or task: the label says which is in effect
    if (data.scope === "global" || data.scope === undefined) board.dataset.paused = String(Boolean(data.paused));
    // Cards show the pause too: re-read the ones it concerns (queued and running work).
    for (const el of board.querySelectorAll('.card[data-state="running"], .card[data-state="queued"]')) {
      refresh(el.dataset.key);
    }
    return;
  }
  const key = data.task_key || (data.task && data.task.key);
  if (!key) return;
  const activity = activityFor(type, data);
  if (activity) setActivity(key, activity);
  if (TASK_EVENTS.has(type)) refresh(key);
}

function connect() {
  const url = `/api/events?project=${encodeURIComponent(project)}&after=${lastId}`;
  const source = new EventSource(url);
  const types = [...TASK_EVENTS, "control.changed", "agent.output", "execution.started",
    "execution.dispatched", "execution.waiting", "execution.paused", "execution.resumed"];
  for (const type of types) source.addEventListener(type, (m) => onEvent(type, m));
  source.addEventListener("stream.gap", () => window.location.reload());
  source.addEventListener("open", () => {
    board.dataset.connected = "true";
  });
  source.addEventListener("error", () => {
    board.dataset.connected = "false";
    // EventSource reconnects by itself with Last-Event-ID; if it gave up (closed), start again.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
  window.wfEventSource = source; // tests drop the connection through this handle
}
window.wfConnect = connect;

// Ask the orchestrator to move a card (drag or keyboard): true when it agreed. Either way the
// answer is announced (the toast is role=alert); the caller re-reads the card.
async function requestMove(key, to) {
  try {
    await api("POST", `/api/projects/${encodeURIComponent(project)}/tasks/${encodeURIComponent(key)}/move`, {
      to_stage: to,
    });
    toast(`${key} moved to ${to}.`);
    return true;
  } catch (err) {
    toast(err.message, "error");
    return false;
  }
}

const moveDialog = document.getElementById("move-dialog");
const moveForm = document.getElementById("move-form");
const moveTo = document.getElementById("move-to");
let moving = null; // the key the dialog is moving

// After a move the user asked for, focus and view follow the card to where it is now.
function focusMoveButton(key) {
  const button = card(key) && card(key).querySelector(".move-card");
  if (!button) return;
  button.focus({ preventScroll: true });
  button.scrollIntoView({ block: "nearest", inline: "nearest" });
}

board.addEventListener("click", (event) => {
  const button = event.target.closest("button.move-card");
  if (!button || !moveDialog) return;
  moving = button.dataset.move;
  document.getElementById("move-key").textContent = moving;
  const here = button.closest(".card").dataset.stage;
  if ([...moveTo.options].some((o) => o.value === here)) moveTo.value = here;
  moveDialog.showModal(); // modal: focus goes to the column list, Escape closes
  moveTo.focus();
});

if (moveDialog) {
  moveDialog.addEventListener("close", () => {
    if (moving) focusMoveButton(moving);
  });
  document.getElementById("move-cancel").addEventListener("click", () => moveDialog.close());
  moveForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = moving;
    const to = moveTo.value;
    // Closed first: a modal dialog makes the rest of the page inert, the announcement included.
    moveDialog.close();
    await requestMove(key, to);
    await refresh(key);
    focusMoveButton(key);
  });
}

for (const list of board.querySelectorAll(".cards")) {
  Sortable.create(list, {
    group: "board",
    animation: 150,
    draggable: ".card",
    forceFallback: true, // pointer events rather than native drag and drop: same on every browser
    onEnd: async (evt) => {
      if (evt.from === evt.to) return;
      const key = evt.item.dataset.key;
      const to = evt.to.dataset.column;
      const back = () => {
        const ref = evt.from.children[evt.oldIndex] || null;
        evt.from.insertBefore(evt.item, ref);
      };
      if (!(await requestMove(key, to))) back();
      refresh(key);
    },
  });
}

updateCounts();
connect();
refreshPauses(project);
