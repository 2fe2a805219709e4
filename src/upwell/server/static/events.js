// Server-Sent Events read from a fetch body (so the request can carry an Authorization header,
// which EventSource cannot): a parser for the text/event-stream format and a reader loop.

export class EventStreamParser {
  constructor() {
    this.buffer = "";
    this.lastEventId = null;
    this._reset();
  }

  _reset() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  /** Feed decoded text; returns the complete messages it finished: [{id, event, data}]. */
  feed(text) {
    this.buffer += text;
    const messages = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this._line(line);
      if (message) messages.push(message);
    }
    return messages;
  }

  _line(line) {
    if (line === "") {
      if (this.id !== null) this.lastEventId = this.id;
      const message =
        this.data.length > 0
          ? { id: this.lastEventId, event: this.event || "message", data: this.data.join("\n") }
          : null;
      this._reset();
      return message;
    }
    if (line.startsWith(":")) return null; // a comment, e.g. the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }
}

/** Read an open text/event-stream response to its end, calling onMessage for each message. */
export async function readEventStream(response, parser, onMessage) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const message of parser.feed(value)) onMessage(message);
    }
  } finally {
    reader.releaseLock();
  }
}
