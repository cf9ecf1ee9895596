// chute's page: upload documents, watch a session's per-file progress, reopen earlier sessions.
// A plain ES module with no build step. Whatever the API returns is rendered as text, never HTML.

const POLL_MS = 2000;
const MAX_RETRY_MS = 30000;
const UPLOAD_CONCURRENCY = 3;
const ROWS_STEP = 200;
const MAX_PAGE = 1000; // the largest page GET /sessions/{id}/files serves
const SESSIONS_SHOWN = 30;
const TOKEN_KEY = "chute.token";
const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
const COUNTS = ["pending", "running", "completed", "failed", "timeout", "cancelled", "paused"];
const COLUMNS = ["File", "Status", "Stage", "Progress", "Attempt", "Time", "Result", "Error"];

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  sid: null, // the session on screen
  watchId: 0, // bumped by each watch: answers that arrive for an earlier one are dropped
  etag: null,
  version: null,
  timer: null,
  failures: 0,
  sawActive: false, // notify only for a session started or seen unfinished here, not old news
  filter: "",
  rowLimit: ROWS_STEP,
  uploading: 0,
};

// ---- formatting ---------------------------------------------------------------------------

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children.flat().filter((child) => child != null && child !== ""));
  return node;
}

const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
const label = (status) => status.replaceAll("_", " ");
const formatTime = (seconds) => new Date(seconds * 1000).toLocaleString();
const badge = (status) => el("span", { className: "badge", dataset: { status } }, label(status));

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i += 1) n /= 1024;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function formatDuration(ms) {
  if (ms == null) return "";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function formatEta(seconds) {
  if (seconds == null) return "estimating time left…";
  if (seconds < 45) return "less than a minute left";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  return `about ${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

// ---- API ----------------------------------------------------------------------------------

async function api(path, { method = "GET", body, etag } = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(new URL(path, document.baseURI), {
    method,
    headers,
    cache: "no-store",
    body: body && JSON.stringify(body),
  });
  if (response.status === 304) return { notModified: true };
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data?.error?.message ?? `The server answered HTTP ${response.status}.`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return { data, etag: response.headers.get("ETag") };
}

// Worth retrying: no answer at all (no status), overload, server errors. A 4xx stays a 4xx.
const retryable = (error) => !error.status || error.status >= 500 || error.status === 429;

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function reportError(error) {
  if (error.status === 401) askForToken(error.message);
  else showError(error.message);
}

// ---- token --------------------------------------------------------------------------------

function takeToken() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    // Out of the address bar, the history, and any link copied from it.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(TOKEN_KEY);
}

function tokenUser(token) {
  // A local token starts with base64url JSON {"sub": user}; for other tokens: undefined.
  try {
    return JSON.parse(atob(token.split(".")[0].replaceAll("-", "+").replaceAll("_", "/"))).sub;
  } catch {
    return undefined;
  }
}

function askForToken(reason) {
  clearTimeout(state.timer);
  state.watchId += 1;
  for (const id of ["upload", "session", "sessions", "account"]) $(id).hidden = true;
  $("auth-reason").textContent = reason ? `The token was not accepted: ${reason}` : "";
  $("auth-reason").hidden = !reason;
  $("auth").hidden = false;
  $("token").focus();
}

function signedIn() {
  const user = tokenUser(state.token);
  $("whoami").textContent = user ? `Signed in as ${user}` : "Signed in";
  for (const id of ["upload", "sessions", "account"]) $(id).hidden = false;
  $("auth").hidden = true;
  const sid = new URLSearchParams(location.search).get("session");
  if (sid) watch(sid);
  loadSessions();
}

// ---- upload -------------------------------------------------------------------------------

function showPicked() {
  const files = [...$("files").files];
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const picked = `${plural(files.length, "file")}, ${formatBytes(bytes)}`;
  $("picked").textContent = files.length ? picked : "";
}

async function startUpload(event) {
  event.preventDefault();
  const files = [...$("files").files];
  if (files.length === 0) return showError("Choose at least one file to upload.");
  // Browsers only ask from a user gesture, such as this click on Start.
  if (window.Notification?.permission === "default") Notification.requestPermission();
  const more = files.length > 1 ? ` and ${plural(files.length - 1, "more file")}` : "";
  const name = $("session-name").value.trim() || `${files[0].name}${more}`.slice(0, 200);
  const manifest = files.map((file) => ({
    name: file.name,
    size: file.size,
    content_type: file.type || "application/octet-stream",
  }));
  $("start").disabled = true;
  $("error").hidden = true;
  try {
    const { data } = await api("sessions", { method: "POST", body: { files: manifest, name } });
    $("upload-form").reset();
    showPicked();
    watch(data.session_id, true);
    loadSessions();
    await uploadAll(data.uploads, files);
  } catch (error) {
    reportError(error);
  } finally {
    $("start").disabled = false;
  }
}

async function uploadAll(tickets, files) {
  const rows = tickets.map((ticket) => uploadRow(files[ticket.ordinal]));
  $("upload-list").replaceChildren(...rows.map((row) => row.item));
  let sent = 0;
  let failed = 0;
  const report = () => {
    const problems = failed ? `; ${failed} failed` : "";
    $("upload-status").textContent =
      `Uploaded ${sent} of ${plural(tickets.length, "file")}${problems}.`;
  };
  const tasks = tickets.map((ticket, i) => async () => {
    const file = files[ticket.ordinal];
    try {
      await sendFile(ticket, file, rows[i].progress);
      rows[i].progress(file.size, true);
      sent += 1;
    } catch (error) {
      rows[i].fail(error.message);
      failed += 1;
    }
    report();
  });
  report();
  state.uploading += 1;
  try {
    await runPool(tasks, UPLOAD_CONCURRENCY);
  } finally {
    state.uploading -= 1;
  }
}

async function runPool(tasks, limit) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

function uploadRow(file) {
  const size = formatBytes(file.size);
  const bar = el("progress", { max: Math.max(file.size, 1), value: 0 });
  bar.ariaLabel = `Upload of ${file.name}`;
  const text = el("span", { className: "muted" }, `0 B of ${size}`);
  const item = el("li", {}, el("span", { className: "name" }, file.name), bar, text);
  return {
    item,
    progress(bytes, done = false) {
      bar.value = done ? bar.max : bytes;
      text.textContent = done ? `${size} sent` : `${formatBytes(bytes)} of ${size}`;
    },
    fail(message) {
      item.classList.add("failed");
      text.textContent = message;
    },
  };
}

// A presigned POST straight to S3, with XMLHttpRequest: fetch cannot report upload progress.
function sendFile(ticket, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
    form.append("file", file); // last: S3 ignores every field after the file
    const xhr = new XMLHttpRequest();
    xhr.open("POST", ticket.url);
    // The multipart envelope makes `loaded` a little larger than the file.
    xhr.upload.onprogress = (event) => onProgress(Math.min(event.loaded, file.size));
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(storageError(xhr)));
    xhr.onerror = () => reject(new Error("Could not reach the storage service (network or CORS)."));
    xhr.send(form);
  });
}

function storageError(xhr) {
  // S3 answers <Error><Code>…</Code><Message>…</Message></Error>.
  const doc = new DOMParser().parseFromString(xhr.responseText || "<x/>", "application/xml");
  const message = doc.querySelector("Message")?.textContent;
  const code = doc.querySelector("Code")?.textContent;
  return message ? `${message} (${code})` : `Storage answered HTTP ${xhr.status}.`;
}

// ---- watching a session -------------------------------------------------------------------

function watch(sid, startedHere = false) {
  const url = new URL(location.href);
  url.searchParams.set("session", sid);
  history.replaceState(null, "", url); // a reload, or coming back, resumes watching
  clearTimeout(state.timer);
  state.watchId += 1;
  Object.assign(state, { sid, etag: null, version: null, failures: 0, sawActive: startedHere });
  Object.assign(state, { filter: "", rowLimit: ROWS_STEP });
  $("filter").value = "";
  $("session").hidden = true; // until the first answer: no numbers from the previous session
  poll();
}

async function poll() {
  const { sid, watchId } = state;
  let delay = POLL_MS;
  try {
    const answer = await api(`sessions/${encodeURIComponent(sid)}`, { etag: state.etag });
    if (watchId !== state.watchId) return;
    state.failures = 0;
    $("connection").hidden = true;
    if (!answer.notModified) {
      const summary = answer.data;
      if (summary.version !== state.version) await refreshRows();
      if (watchId !== state.watchId) return;
      renderSummary(summary);
      // Remembered only once all is on screen: after a failed row fetch, the next poll retries.
      Object.assign(state, { etag: answer.etag, version: summary.version });
      if (TERMINAL.has(summary.status)) return finish(summary);
      state.sawActive = true;
    }
  } catch (error) {
    if (watchId !== state.watchId) return;
    if (!retryable(error)) return reportError(error);
    state.failures += 1;
    delay = Math.min(POLL_MS * 2 ** state.failures, MAX_RETRY_MS);
    $("connection").textContent =
      `Lost contact with the server (${error.message}). Retrying in ${delay / 1000} s…`;
    $("connection").hidden = false;
  }
  state.timer = setTimeout(poll, delay);
}

function renderSummary(s) {
  $("session").hidden = false;
  $("session-title").textContent = s.name || "Untitled session";
  $("session-status").replaceWith(Object.assign(badge(s.status), { id: "session-status" }));
  $("session-meta").textContent = `Session ${s.session_id} · started ${formatTime(s.created_at)}`;
  $("overall").value = s.progress;
  $("progress-text").textContent = progressText(s);
  $("counts").replaceChildren(...COUNTS.map((name) => countItem(name, s.counts[name])));
  $("timed-out").hidden = !s.timed_out;
  $("timed-out").textContent =
    s.files_received < s.files_total
      ? `Only ${s.files_received} of ${plural(s.files_total, "file")} arrived before the ` +
        "upload window closed; the missing ones will not be processed."
      : `${plural(s.counts.timeout, "unit")} ran out of time.`;
  const summary = $("summary");
  summary.hidden = !TERMINAL.has(s.status);
  summary.dataset.status = s.status;
  summary.textContent = summaryText(s);
  document.title = `${Math.floor(s.progress)}% · ${s.name || "session"} — chute`;
}

function countItem(status, n) {
  const count = el("strong", {}, String(n));
  return el("li", { className: n ? "" : "zero", dataset: { status } }, count, ` ${label(status)}`);
}

function progressText(s) {
  if (s.status === "uploading") {
    return `Waiting for uploads: ${s.files_received} of ${plural(s.files_total, "file")} received.`;
  }
  const c = s.counts;
  const done = c.completed + c.failed + c.timeout + c.cancelled;
  const parts = [`${done} of ${s.total} done (${Math.floor(s.progress)}%)`];
  if (s.files_received < s.files_total) {
    parts.push(`${s.files_received} of ${s.files_total} uploads received`);
  }
  if (s.status === "processing") parts.push(formatEta(s.eta_seconds));
  return parts.join(" · ");
}

function summaryText(s) {
  const c = s.counts;
  if (s.status === "completed") return `All ${plural(s.total, "file")} completed.`;
  const problems = [
    [c.failed, "failed"],
    [c.timeout, "timed out"],
    [c.cancelled, "cancelled"],
  ].filter(([n]) => n > 0);
  const head = `${c.completed} of ${plural(s.total, "file")} completed`;
  if (problems.length === 0) return `${head}.`;
  return `${head}; ${problems.map(([n, what]) => `${n} ${what}`).join(", ")} — see below.`;
}

function finish(summary) {
  if (state.sawActive) notify(summary);
  loadSessions();
}

function notify(summary) {
  const title = `${summary.name || "Your session"}: ${label(summary.status)}`;
  if (window.Notification?.permission === "granted") {
    try {
      new Notification(title, { body: summaryText(summary), tag: summary.session_id });
      return;
    } catch {
      // Chrome on Android only notifies from a service worker: fall back to the banner.
    }
  }
  $("banner").dataset.status = summary.status;
  $("banner-text").textContent = `${title}. ${summaryText(summary)}`;
  $("banner").hidden = false;
}

// ---- the file table -----------------------------------------------------------------------

async function fetchRows(sid) {
  const rows = [];
  let cursor = null;
  do {
    // A filtered page reads `limit` units and returns only the matches: read big pages then.
    const limit = state.filter ? MAX_PAGE : Math.min(MAX_PAGE, state.rowLimit - rows.length);
    const params = new URLSearchParams({ limit });
    if (state.filter) params.set("status", state.filter);
    if (cursor) params.set("cursor", cursor);
    const { data } = await api(`sessions/${encodeURIComponent(sid)}/files?${params}`);
    rows.push(...data.items);
    cursor = data.next_cursor;
  } while (cursor && rows.length < state.rowLimit);
  const more = Boolean(cursor) || rows.length > state.rowLimit;
  return { rows: rows.slice(0, state.rowLimit), more };
}

async function refreshRows() {
  const watchId = state.watchId;
  const { rows, more } = await fetchRows(state.sid);
  if (watchId !== state.watchId) return;
  $("unit-rows").replaceChildren(...rows.map(unitRow));
  $("no-rows").hidden = rows.length > 0;
  $("no-rows").textContent = state.filter
    ? `No ${label(state.filter)} files.`
    : "No files yet: they appear as their uploads arrive.";
  $("show-more").hidden = !more;
}

function unitRow(u) {
  const progress = el("progress", { max: 100, value: u.progress });
  progress.ariaLabel = `Progress of ${u.name}`;
  const cells = [
    u.name,
    badge(u.status),
    u.status === "completed" ? "" : u.stage ?? "", // where it is, or where it stopped
    [progress, `${Math.floor(u.progress)}%`],
    u.attempt ? `${u.attempt}/${u.max_attempts}` : "",
    formatDuration(u.duration_ms),
    resultText(u.result),
    u.error ? [el("code", {}, u.error.code), ` ${u.error.message}`] : "",
  ];
  const [name, ...rest] = cells.map((content, i) =>
    el(i ? "td" : "th", { dataset: { label: COLUMNS[i] } }, content),
  );
  name.scope = "row";
  return el("tr", { dataset: { status: u.status } }, name, ...rest);
}

function resultText(result) {
  if (!result) return "";
  const words = result.words != null ? plural(result.words, "word") : null;
  const pages = result.pages != null ? plural(result.pages, "page") : null;
  return [result.type, words, pages].filter(Boolean).join(" · ");
}

// ---- your sessions ------------------------------------------------------------------------

async function loadSessions() {
  try {
    const { data } = await api(`sessions?limit=${SESSIONS_SHOWN}`);
    $("session-list").replaceChildren(...data.items.map(sessionItem));
    $("no-sessions").hidden = data.items.length > 0;
  } catch (error) {
    reportError(error);
  }
}

function sessionItem(s) {
  const href = `?session=${encodeURIComponent(s.session_id)}`;
  const link = el("a", { href }, s.name || "Untitled session");
  if (s.session_id === state.sid) link.setAttribute("aria-current", "page");
  const details = s.status === "uploading"
    ? `${s.files_received} of ${plural(s.files_total, "file")} uploaded`
    : `${Math.floor(s.progress)}% of ${plural(s.total, "file")}`;
  const when = formatTime(s.created_at);
  const muted = el("span", { className: "muted" }, `${details} · ${when}`);
  return el("li", {}, link, badge(s.status), muted);
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem(TOKEN_KEY, state.token);
    $("token-form").reset();
    $("error").hidden = true;
    signedIn();
  });
  $("change-token").addEventListener("click", () => askForToken());
  $("upload-form").addEventListener("submit", startUpload);
  $("files").addEventListener("change", showPicked);
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    $("files").files = event.dataTransfer.files;
    showPicked();
  });
  $("filter").addEventListener("change", () => {
    Object.assign(state, { filter: $("filter").value, rowLimit: ROWS_STEP });
    refreshRows().catch(reportError);
  });
  $("show-more").addEventListener("click", () => {
    state.rowLimit += ROWS_STEP;
    refreshRows().catch(reportError);
  });
  $("refresh-sessions").addEventListener("click", loadSessions);
  $("error-close").addEventListener("click", () => ($("error").hidden = true));
  $("banner-close").addEventListener("click", () => ($("banner").hidden = true));
  window.addEventListener("beforeunload", (event) => {
    if (state.uploading) event.preventDefault(); // leaving now would abort the uploads
  });
}

wire();
state.token = takeToken();
if (state.token) signedIn();
else askForToken();
