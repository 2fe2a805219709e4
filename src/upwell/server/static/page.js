// The page at `/`: pick or drop files, upload each with tus (pause, resume, cancel, resume after
// a reload), and watch recent uploads live. No build step: plain ES modules from /static/.

import { authorizedFetch, currentToken, setToken } from "./auth.js";
import * as format from "./format.js";
import { RecentUploads } from "./recent.js";
import { Upload, rememberedUploads } from "./tus.js";

const MAX_ACTIVE = 3; // uploads sending at once; the rest wait their turn
const SPEED_WINDOW_MS = 10_000;

const endpoint = new URL(document.body.dataset.tusEndpoint, window.location.href).href;
// `?chunk=BYTES` fixes the chunk size; without it each upload adapts its own so that a PATCH
// takes about `?chunk-seconds=` (default 1).
const query = new URLSearchParams(window.location.search);
const chunkSize = Number(query.get("chunk")) || undefined;
const chunkSeconds = Number(query.get("chunk-seconds")) || undefined;

const $ = (selector) => document.querySelector(selector);
const transfersList = $("#transfers");
const rememberedList = $("#remembered");
const notice = $("#notice");
const transfers = new Map(); // fingerprint -> {upload, row, wanted, samples}

// --- the token prompt --------------------------------------------------------------------

const dialog = $("#token-dialog");
const tokenInput = $("#token");

function askToken(refused) {
  $("#token-reason").textContent = refused
    ? "The server refused that token. Enter another one."
    : "This server needs an access token.";
  tokenInput.value = "";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" && tokenInput.value.trim() ? tokenInput.value.trim() : null),
      { once: true },
    );
    dialog.showModal();
    tokenInput.focus();
  });
}

const authFetch = authorizedFetch(askToken);

$("#token-button").addEventListener("click", async () => {
  const token = await askToken(false);
  if (token) {
    setToken(token);
    say("Token saved for this tab.");
  }
});
$("#token-clear").addEventListener("click", () => {
  setToken(null);
  say("Token forgotten.");
});
function showTokenState() {
  $("#token-clear").hidden = !currentToken();
}
window.addEventListener("upwell-token", showTokenState);
showTokenState();

// --- picking and dropping files -------------------------------------------------------------

const picker = $("#picker");
picker.addEventListener("change", () => {
  addFiles(picker.files);
  picker.value = ""; // so choosing the same file again (to resume it) fires change again
});

const drop = $("#drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, () => drop.classList.remove("dragging"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer) addFiles(event.dataTransfer.files);
});
// A file dropped beside the zone must not navigate away from the page (and its uploads).
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

function addFiles(files) {
  for (const file of files) {
    const upload = new Upload(file, { endpoint, chunkSize, chunkSeconds, fetch: authFetch, onChange: changed });
    const existing = transfers.get(upload.key);
    if (existing && existing.upload.state !== "done") {
      say(`${file.name} is already in the list.`);
      continue;
    }
    if (existing) existing.row.remove();
    const transfer = { upload, row: makeRow(upload), wanted: true, samples: [] };
    transfers.set(upload.key, transfer);
    transfersList.prepend(transfer.row);
    if (upload.url) say(`Resuming ${file.name} where it stopped.`);
    render(transfer);
  }
  showRemembered();
  pump();
}

// --- running uploads --------------------------------------------------------------------------

function pump() {
  let active = [...transfers.values()].filter((t) => t.upload.state === "uploading").length;
  for (const transfer of transfers.values()) {
    if (active >= MAX_ACTIVE) break;
    const { upload } = transfer;
    if (transfer.wanted && (upload.state === "idle" || upload.state === "paused")) {
      active += 1;
      upload.start().then(pump);
    }
  }
}

function changed(upload) {
  const transfer = transfers.get(upload.key);
  if (!transfer || transfer.upload !== upload) return;
  if (upload.state === "uploading") {
    const now = performance.now();
    transfer.samples.push([now, upload.offset]);
    while (transfer.samples.length > 2 && now - transfer.samples[0][0] > SPEED_WINDOW_MS) {
      transfer.samples.shift();
    }
  } else {
    transfer.samples = [];
  }
  if (upload.state === "done") say(`${upload.file.name} is uploaded.`);
  if (upload.state === "failed") say(`${upload.file.name} failed: ${upload.error}`);
  render(transfer);
}

function speedOf(transfer) {
  const { samples } = transfer;
  if (samples.length < 2) return null;
  const [t0, o0] = samples[0];
  const [t1, o1] = samples[samples.length - 1];
  return t1 > t0 && o1 > o0 ? ((o1 - o0) * 1000) / (t1 - t0) : null;
}

// --- one row per file -------------------------------------------------------------------------

function makeRow(upload) {
  const row = document.createElement("li");
  row.className = "transfer";
  row.dataset.name = upload.file.name;
  row.innerHTML = `
    <div class="transfer-head"><span class="name"></span><span class="badge"></span></div>
    <progress max="1" value="0"></progress>
    <div class="transfer-meta"><span class="amount"></span> <span class="speed"></span> <span class="eta"></span></div>
    <p class="error" hidden></p>
    <div class="actions">
      <button type="button" data-action="pause">Pause</button>
      <button type="button" data-action="resume">Resume</button>
      <button type="button" data-action="cancel" class="danger">Cancel</button>
    </div>`;
  row.querySelector(".name").textContent = upload.file.name;
  row.querySelector("progress").setAttribute("aria-label", `${upload.file.name} progress`);
  for (const button of row.querySelectorAll("button")) {
    button.setAttribute("aria-label", `${button.textContent} ${upload.file.name}`);
    button.addEventListener("click", () => act(upload.key, button.dataset.action));
  }
  return row;
}

async function act(key, action) {
  const transfer = transfers.get(key);
  if (!transfer) return;
  const { upload, row } = transfer;
  if (action === "pause") {
    transfer.wanted = false;
    upload.pause();
    render(transfer);
    row.querySelector('[data-action="resume"]').focus();
  } else if (action === "resume") {
    transfer.wanted = true;
    pump();
    render(transfer);
    row.querySelector('[data-action="pause"]').focus();
  } else if (action === "cancel") {
    transfer.wanted = false;
    await upload.cancel();
    transfers.delete(key);
    row.remove();
    say(`Cancelled ${upload.file.name}.`);
    pump();
  }
}

function shownState(transfer) {
  const { state } = transfer.upload;
  if (state === "idle" || (state === "paused" && transfer.wanted)) return transfer.wanted ? "queued" : "paused";
  return state;
}

function render(transfer) {
  const { upload, row } = transfer;
  const state = shownState(transfer);
  row.dataset.state = state;
  row.dataset.offset = String(upload.offset);
  row.dataset.size = String(upload.size);
  if (upload.url) row.dataset.url = upload.url;
  if (upload.resumedFrom !== null) row.dataset.resumedFrom = String(upload.resumedFrom);
  row.querySelector(".badge").textContent = state;
  row.querySelector(".badge").className = `badge state-${state}`;
  const bar = row.querySelector("progress");
  bar.max = Math.max(upload.size, 1);
  bar.value = upload.size ? upload.offset : 1;
  row.querySelector(".amount").textContent =
    `${format.percent(upload.offset, upload.size)} · ${format.bytes(upload.offset)} of ${format.bytes(upload.size)}`;
  const speed = state === "uploading" ? speedOf(transfer) : null;
  row.querySelector(".speed").textContent = speed ? `· ${format.bytes(Math.round(speed))}/s` : "";
  row.querySelector(".eta").textContent = speed
    ? `· ${format.duration((upload.size - upload.offset) / speed)} left`
    : "";
  const error = row.querySelector(".error");
  error.hidden = !upload.error;
  error.textContent = upload.error || "";
  const finished = state === "done" || state === "cancelled";
  row.querySelector('[data-action="pause"]').hidden = finished || !(state === "uploading" || state === "queued");
  row.querySelector('[data-action="resume"]').hidden = finished || !(state === "paused" || state === "failed");
  row.querySelector('[data-action="resume"]').textContent = state === "failed" ? "Retry" : "Resume";
  row.querySelector('[data-action="cancel"]').hidden = finished;
}

// --- uploads this browser remembers from before a reload --------------------------------------

function showRemembered() {
  const active = new Set(transfers.keys());
  const entries = rememberedUploads(window.localStorage, endpoint).filter((e) => !active.has(e.key));
  $("#remembered-section").hidden = entries.length === 0;
  rememberedList.replaceChildren();
  for (const entry of entries) {
    const item = document.createElement("li");
    item.dataset.name = entry.name;
    const text = document.createElement("span");
    text.textContent = `${entry.name} — ${format.percent(entry.offset || 0, entry.size)} of ${format.bytes(entry.size)}`;
    const discard = document.createElement("button");
    discard.type = "button";
    discard.textContent = "Discard";
    discard.setAttribute("aria-label", `Discard ${entry.name}`);
    discard.addEventListener("click", async () => {
      window.localStorage.removeItem(entry.key);
      showRemembered();
      try {
        await authFetch(entry.url, { method: "DELETE", headers: { "Tus-Resumable": "1.0.0" } });
      } catch {
        // Unreachable now: the server expires it on its own.
      }
    });
    item.append(text, discard);
    rememberedList.append(item);
  }
}

function say(text) {
  notice.textContent = text;
}

showRemembered();
document.body.dataset.ready = "true";
new RecentUploads({ list: $("#recent"), status: $("#recent-status"), fetch: authFetch }).start();
