// A small tus 1.0 client over fetch: create, PATCH in chunks, HEAD to resume, DELETE to cancel.
// The upload URL of each file is kept in localStorage under the file's name, size and
// modification time, so choosing the same file after a reload (or in a new tab) resumes it.

export const TUS_VERSION = "1.0.0";
// Without a fixed chunk size, each PATCH aims at about a second: progress moves on a slow link
// and a fast one is not held back by a request (and an fsync on the server) per few MiB.
export const FIRST_CHUNK_SIZE = 4 * 1024 * 1024;
const MIN_CHUNK_SIZE = 256 * 1024;
const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
export const CHUNK_SECONDS = 1;
const STORE_PREFIX = "upwell.upload:";
// Seconds between attempts after a network error, a 5xx, 409 (offset moved) or 423 (locked by
// a writer the server has not yet seen go away); past the last one the upload fails.
const RETRY_DELAYS = [0.5, 1, 2, 4, 8, 15];

export class TusError extends Error {
  constructor(message, status = null) {
    super(message);
    this.name = "TusError";
    this.status = status;
  }
}

export function fingerprint(file, endpoint) {
  return `${STORE_PREFIX}${endpoint}|${file.name}|${file.size}|${file.lastModified}`;
}

/** Unfinished uploads this browser remembers for `endpoint`: [{key, name, size, offset, url}]. */
export function rememberedUploads(storage, endpoint) {
  const found = [];
  for (let i = 0; i < storage.length; i++) {
    const key = storage.key(i);
    if (!key || !key.startsWith(`${STORE_PREFIX}${endpoint}|`)) continue;
    try {
      const entry = JSON.parse(storage.getItem(key));
      if (entry && typeof entry.url === "string") found.push({ key, ...entry });
    } catch {
      storage.removeItem(key);
    }
  }
  return found.sort((a, b) => (b.savedAt || 0) - (a.savedAt || 0));
}

function base64(text) {
  return base64Bytes(new TextEncoder().encode(text));
}

export function encodeMetadata(metadata) {
  return Object.entries(metadata)
    .filter(([, value]) => value !== undefined && value !== null && value !== "")
    .map(([key, value]) => `${key} ${base64(String(value))}`)
    .join(",");
}

function parseOffset(response) {
  const raw = response.headers.get("Upload-Offset");
  if (raw === null || !/^\d+$/.test(raw.trim())) {
    throw new TusError(`the server sent no valid Upload-Offset (status ${response.status})`);
  }
  return Number(raw.trim());
}

async function reason(response) {
  try {
    const text = (await response.text()).trim().split("\n")[0];
    return text ? `: ${text.slice(0, 200)}` : "";
  } catch {
    return "";
  }
}

function retryable(status) {
  // 460: the chunk's checksum did not match what arrived, so the server kept none of it.
  return status === 409 || status === 423 || status === 429 || status === 460 || status >= 500;
}

function base64Bytes(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The tus `Upload-Checksum` of a chunk: SHA-256 over its bytes. */
async function checksumOf(blob) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  return `sha256 ${base64Bytes(digest)}`;
}

function wait(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/**
 * One file's upload. States: idle, uploading, paused, done, failed, cancelled.
 * `onChange(upload)` is called whenever state, offset or error change.
 */
export class Upload {
  constructor(file, options) {
    this.file = file;
    this.endpoint = options.endpoint;
    this.fixedChunkSize = Boolean(options.chunkSize);
    this.chunkSize = options.chunkSize || FIRST_CHUNK_SIZE;
    this.chunkSeconds = options.chunkSeconds || CHUNK_SECONDS;
    // Each chunk carries its SHA-256 where the browser can hash (a secure context: https, or
    // localhost); the server then keeps a chunk only if every byte of it arrived intact.
    this.checksums = options.checksums ?? Boolean(globalThis.crypto && globalThis.crypto.subtle);
    this.fetch = options.fetch || ((url, init) => fetch(url, init));
    this.storage = options.storage || window.localStorage;
    this.onChange = options.onChange || (() => {});
    this.key = fingerprint(file, this.endpoint);
    this.state = "idle";
    this.offset = 0;
    this.url = null;
    this.error = null;
    this.resumedFrom = null; // the offset a remembered upload was found at, if any
    this._abort = null;
    this._running = null;
    const remembered = this._remembered();
    if (remembered) {
      this.url = remembered.url;
      this.offset = Math.min(remembered.offset || 0, file.size);
    }
  }

  get size() {
    return this.file.size;
  }

  /** Start or resume; resolves when the upload ends, pauses or fails (never rejects). */
  start() {
    if (this._running) return this._running;
    if (this.state === "done" || this.state === "cancelled") return Promise.resolve();
    this._abort = new AbortController();
    this.error = null;
    this._set("uploading");
    this._running = this._run(this._abort.signal)
      .then(() => this._set("done"))
      .catch((error) => {
        if (this._abort.signal.aborted) return; // paused or cancelled: already said so
        this.error = error instanceof Error ? error.message : String(error);
        this._set("failed");
      })
      .finally(() => {
        this._running = null;
      });
    return this._running;
  }

  pause() {
    if (this.state !== "uploading") return;
    this._set("paused");
    this._abort.abort(new DOMException("paused", "AbortError"));
  }

  resume() {
    if (this.state === "paused" || this.state === "failed" || this.state === "idle") {
      return this.start();
    }
    return this._running || Promise.resolve();
  }

  /** Stop, ask the server to delete what it has, and forget the upload. */
  async cancel() {
    if (this.state === "done" || this.state === "cancelled") return;
    const wasRunning = this._running;
    this._set("cancelled");
    if (this._abort) this._abort.abort(new DOMException("cancelled", "AbortError"));
    if (wasRunning) await wasRunning;
    this._forget();
    if (this.url) {
      try {
        await this.fetch(this.url, { method: "DELETE", headers: { "Tus-Resumable": TUS_VERSION } });
      } catch {
        // The server expires what it was left with; nothing more to do here.
      }
    }
  }

  async _run(signal) {
    let failures = 0;
    for (;;) {
      try {
        await this._attempt(signal);
        this._forget();
        return;
      } catch (error) {
        if (signal.aborted) throw error;
        const transient = error instanceof TypeError || (error instanceof TusError && retryable(error.status));
        if (!transient || failures >= RETRY_DELAYS.length) throw error;
        this.error = `${error.message}; retrying`;
        this.onChange(this);
        await wait(RETRY_DELAYS[failures++], signal);
      }
    }
  }

  async _attempt(signal) {
    if (this.url) await this._head(signal);
    if (!this.url) await this._create(signal);
    let next = null; // the next chunk's checksum, hashed while this one is on the wire
    while (this.offset < this.size) {
      const end = Math.min(this.offset + this.chunkSize, this.size);
      const headers = {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": String(this.offset),
        "Content-Type": "application/offset+octet-stream",
      };
      // The body stays a Blob (chromium sends an ArrayBuffer body several times slower); a
      // file changed since it was hashed fails the checksum and is read again on the retry.
      const body = this.file.slice(this.offset, end);
      if (this.checksums) {
        const ready = next && next.start === this.offset && next.end === end;
        headers["Upload-Checksum"] = await (ready ? next.checksum : checksumOf(body));
        next = null;
        if (end < this.size) next = this._hashAhead(end);
      }
      const started = performance.now();
      const response = await this.fetch(this.url, { method: "PATCH", headers, body, signal });
      if (response.status === 404 || response.status === 410) {
        this._forgetServerSide();
        throw new TusError(`the server no longer has this upload (${response.status})`, 409);
      }
      if (response.status !== 204) {
        throw new TusError(`PATCH answered ${response.status}${await reason(response)}`, response.status);
      }
      const offset = parseOffset(response);
      if (offset <= this.offset || offset > this.size) {
        throw new TusError(`the server's offset went from ${this.offset} to ${offset}`);
      }
      this.offset = offset;
      this._remember();
      this._adapt((performance.now() - started) / 1000, end);
      this.onChange(this);
    }
  }

  /** Start hashing the chunk that would follow at `start` (used if the chunk size holds). */
  _hashAhead(start) {
    const end = Math.min(start + this.chunkSize, this.size);
    const checksum = checksumOf(this.file.slice(start, end));
    checksum.catch(() => {}); // unused when the size changes or the upload stops
    return { start, end, checksum };
  }

  _adapt(seconds, end) {
    if (this.fixedChunkSize || end === this.size) return;
    if (seconds < this.chunkSeconds / 2) {
      this.chunkSize = Math.min(this.chunkSize * 2, MAX_CHUNK_SIZE);
    } else if (seconds > this.chunkSeconds * 2) {
      this.chunkSize = Math.max(this.chunkSize / 2, MIN_CHUNK_SIZE);
    }
  }

  async _head(signal) {
    const response = await this.fetch(this.url, {
      method: "HEAD",
      headers: { "Tus-Resumable": TUS_VERSION },
      signal,
      cache: "no-store",
    });
    if (response.status === 404 || response.status === 410 || response.status === 403) {
      this._forgetServerSide(); // expired or deleted there: start over
      return;
    }
    if (!response.ok) throw new TusError(`HEAD answered ${response.status}`, response.status);
    const offset = parseOffset(response);
    if (offset > this.size) {
      this._forgetServerSide();
      return;
    }
    if (this.resumedFrom === null) this.resumedFrom = offset;
    this.offset = offset;
    this.onChange(this);
  }

  async _create(signal) {
    const response = await this.fetch(this.endpoint, {
      method: "POST",
      headers: {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Length": String(this.size),
        "Upload-Metadata": encodeMetadata({
          filename: this.file.name,
          filetype: this.file.type || "application/octet-stream",
        }),
      },
      signal,
    });
    if (response.status !== 201) {
      throw new TusError(`creating the upload answered ${response.status}${await reason(response)}`, response.status);
    }
    const location = response.headers.get("Location");
    if (!location) throw new TusError("the server created the upload but sent no Location");
    this.url = new URL(location, response.url || window.location.href).href;
    this.offset = 0;
    this.resumedFrom = null;
    this._remember();
    this.onChange(this);
  }

  _remembered() {
    try {
      const entry = JSON.parse(this.storage.getItem(this.key));
      return entry && typeof entry.url === "string" ? entry : null;
    } catch {
      return null;
    }
  }

  _remember() {
    const entry = {
      url: this.url,
      name: this.file.name,
      size: this.size,
      lastModified: this.file.lastModified,
      offset: this.offset,
      savedAt: Date.now(),
    };
    try {
      this.storage.setItem(this.key, JSON.stringify(entry));
    } catch {
      // Storage full or disabled: the upload still runs, it just cannot resume after a reload.
    }
  }

  _forget() {
    this.storage.removeItem(this.key);
  }

  _forgetServerSide() {
    this._forget();
    this.url = null;
    this.offset = 0;
  }

  _set(state) {
    this.state = state;
    this.onChange(this);
  }
}
