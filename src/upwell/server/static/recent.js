// The recent-uploads list: GET /uploads, then live changes from GET /uploads/events, read with
// fetch streaming so the bearer token can go in a header.

import { EventStreamParser, readEventStream } from "./events.js";
import * as format from "./format.js";

const RECONNECT_DELAYS = [1, 2, 5, 10]; // seconds; the last one repeats
const SHOWN = 50;

export class RecentUploads {
  constructor({ list, status, fetch }) {
    this.list = list;
    this.status = status;
    this.fetch = fetch;
    this.records = new Map();
    this.progress = new Map(); // upload id -> the last progress event for it
    this.parser = new EventStreamParser();
  }

  async start() {
    if (await this._load()) await this._follow();
  }

  /** GET /uploads into the list; false when the server has no catalog or refused. */
  async _load() {
    const response = await this.fetch("/uploads?limit=" + SHOWN, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 404) {
      this._say("This server keeps no catalog of uploads.");
      return false;
    }
    if (!response.ok) {
      this._say(`The list of uploads could not be read (${response.status}).`);
      return false;
    }
    const body = await response.json();
    for (const record of (body.uploads || []).slice().reverse()) this.upsert(record);
    this._say(this.records.size ? "" : "No uploads yet.");
    this.list.dataset.loaded = "true";
    return true;
  }

  async _follow() {
    let failures = 0;
    let reconnecting = false;
    for (;;) {
      const headers = { Accept: "text/event-stream" };
      if (this.parser.lastEventId !== null) headers["Last-Event-ID"] = this.parser.lastEventId;
      try {
        const response = await this.fetch("/uploads/events", { headers, cache: "no-store" });
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          this._say(`Live updates are off (the server answered ${response.status}).`);
          return;
        }
        if (response.ok) {
          this.list.dataset.live = "true";
          // Back after a drop: what the replay cannot give (a restarted server keeps no old
          // events) the list itself still has. Read it now the stream is open, so nothing
          // falls between the two.
          if (reconnecting) this._load().catch(() => {});
          failures = 0;
          reconnecting = true;
          await readEventStream(response, this.parser, (message) => this._message(message));
        }
      } catch {
        // The connection dropped: reconnect below, with Last-Event-ID so nothing is missed.
      }
      this.list.dataset.live = "false";
      const delay = RECONNECT_DELAYS[Math.min(failures++, RECONNECT_DELAYS.length - 1)];
      await new Promise((resolve) => setTimeout(resolve, delay * 1000));
    }
  }

  _message(message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (message.event === "record" && data && data.id) {
      this.upsert(data);
    } else if (message.event === "progress" && data && data.upload_id) {
      this.progress.set(data.upload_id, data);
      const record = this.records.get(data.upload_id);
      if (record) this._render(record);
    }
  }

  upsert(record) {
    const known = this.records.has(record.id);
    this.records.set(record.id, record);
    if (!known) this.progress.delete(record.id);
    this._render(record);
    if (!known) {
      this._say("");
      while (this.list.children.length > SHOWN) this.list.lastElementChild.remove();
    }
  }

  _render(record) {
    let item = this.list.querySelector(`li[data-id="${CSS.escape(record.id)}"]`);
    if (!item) {
      item = document.createElement("li");
      item.className = "record";
      item.dataset.id = record.id;
      this.list.prepend(item);
    }
    item.dataset.status = record.status;
    item.replaceChildren();

    const head = element("div", "record-head");
    head.append(element("span", "name", record.filename || record.id));
    head.append(element("span", `badge status-${record.status}`, record.status));
    item.append(head);

    const facts = [format.bytes(record.size ?? 0)];
    const progress = this.progress.get(record.id);
    if (record.status === "receiving") {
      const done = progress && progress.phase === "receive" ? progress.bytes_uploaded : record.offset;
      facts.push(`${format.percent(done ?? 0, record.size)} received`);
    }
    if (record.created) facts.push(format.when(record.created));
    item.append(element("div", "record-meta", facts.join(" · ")));

    if (record.forwards && record.forwards.length) {
      const forwards = element("ul", "forwards");
      for (const forward of record.forwards) {
        const line = element("li", "forward");
        line.dataset.target = forward.target;
        line.dataset.state = forward.state;
        let text = `${forward.target}: ${forward.state}`;
        if (
          progress &&
          progress.phase === "forward" &&
          progress.target === forward.target &&
          forward.state === "running"
        ) {
          text += ` ${format.percent(progress.bytes_uploaded, progress.bytes_total)}`;
        }
        if (forward.file_name) text += ` — ${forward.file_name}`;
        if (forward.error && forward.state !== "done") text += ` (${forward.error})`;
        line.textContent = text;
        forwards.append(line);
      }
      item.append(forwards);
    }
  }

  _say(text) {
    this.status.textContent = text;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
