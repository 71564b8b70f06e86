// A bounded live log window: at most MAX_LINES lines are in the page; older lines are fetched from
// the server on demand (GET …/output?before=<id>), newer ones arrive from the event stream. Every
// line keeps its event id, so the two sources merge without duplicates. Text goes in with textContent.
export const MAX_LINES = 500;
const PAGE = 200;

export class LogWindow {
  constructor(element, olderButton, outputUrl) {
    this.el = element;
    this.older = olderButton;
    this.url = outputUrl;
    this.firstId = null; // smallest id shown
    this.lastId = 0; // largest id shown
    this.droppedOlder = false;
    this.pending = [];
    this.scheduled = false;
    this.older.addEventListener("click", () => this.loadOlder());
  }

  line(item) {
    const row = document.createElement("div");
    row.className = `line k-${item.kind}`;
    row.dataset.id = String(item.id);
    const tag = document.createElement("span");
    tag.className = "kind";
    tag.textContent = `${item.stage} ${item.kind}`;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = item.text;
    row.append(tag, text);
    return row;
  }

  // Lines are queued and written once per frame: one layout read and one DOM change per frame, however
  // fast they arrive. The queue never holds more than the window.
  append(item) {
    if (item.id <= this.lastId) return;
    this.lastId = item.id;
    this.pending.push(item);
    if (this.pending.length > MAX_LINES) {
      this.pending.splice(0, this.pending.length - MAX_LINES);
      this.droppedOlder = true;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.scheduled = false;
    if (!this.pending.length) return;
    const stick = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 8;
    const fragment = document.createDocumentFragment();
    for (const item of this.pending) fragment.append(this.line(item));
    this.pending = [];
    this.el.append(fragment);
    const extra = this.el.childElementCount - MAX_LINES;
    if (extra > 0) {
      const range = document.createRange();
      range.setStartBefore(this.el.firstElementChild);
      range.setEndAfter(this.el.children[extra - 1]);
      range.deleteContents();
      this.droppedOlder = true;
    }
    this.firstId = Number.parseInt(this.el.firstElementChild.dataset.id, 10);
    if (this.droppedOlder) this.older.hidden = false;
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  async loadTail() {
    const page = await this.fetchPage(null);
    for (const item of page.lines) this.append(item);
    this.older.hidden = !page.more;
  }

  async loadOlder() {
    this.flush();
    if (this.firstId === null) return;
    const page = await this.fetchPage(this.firstId);
    const anchor = this.el.firstElementChild;
    const height = this.el.scrollHeight;
    const fragment = document.createDocumentFragment();
    for (const item of page.lines) fragment.append(this.line(item));
    this.el.insertBefore(fragment, anchor);
    if (page.lines.length) this.firstId = page.lines[0].id;
    // Older lines were asked for: drop the newest beyond the window instead, and say so.
    while (this.el.childElementCount > MAX_LINES) {
      this.el.lastElementChild.remove();
      this.lastId = Number.parseInt(this.el.lastElementChild.dataset.id, 10);
      this.trimmedNewer = true;
    }
    this.el.scrollTop = this.el.scrollHeight - height;
    this.older.hidden = !page.more;
  }

  async fetchPage(before) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (before !== null) params.set("before", String(before));
    const response = await fetch(`${this.url}?${params}`, { credentials: "same-origin" });
    if (!response.ok) return { lines: [], more: false };
    return response.json();
  }
}
