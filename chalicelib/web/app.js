// chute's page: start a session (documents, or prompts from a file or pasted), watch it unit by
// unit, steer it, download its results, read notifications. A plain ES module with no build step.
// Whatever the API returns is rendered as text, never as HTML.

const POLL_MS = 2000;
const HIDDEN_POLL_MS = 10000; // a tab nobody looks at asks less often
const MAX_RETRY_MS = 30000;
const UPLOAD_CONCURRENCY = 3;
const PAGE_SIZE = 100;
const FAILURES_SHOWN = 20;
const SESSIONS_SHOWN = 30;
const ANNOUNCE_EVERY_MS = 10000; // progress is spoken at most this often; endings at once
const NOTIFICATIONS_EVERY_MS = 30000;
const OPERATOR_EVERY_MS = 10000;
const TOKEN_KEY = "chute.token";
const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled", "rejected"]);
const ACTIVE = new Set(["uploading", "processing"]);
const COUNTS = ["pending", "running", "paused", "completed", "failed", "timeout", "cancelled", "skipped"];
const COLUMNS = ["Name", "Status", "Stage", "Progress", "Attempt", "Time", "Result", "Error"];
// What a session's units are called, by job type: [one, many].
const NOUNS = {
  documents: ["file", "files"],
  document_summaries: ["file", "files"],
  prompts: ["row", "rows"],
  summaries: ["summary", "summaries"],
};
const EVENTS = [
  ["session.started", "Started"],
  ["session.milestone_25", "25 % done"],
  ["session.milestone_50", "50 % done"],
  ["session.milestone_75", "75 % done"],
  ["session.completed", "Completed"],
  ["session.completed_with_errors", "Completed with errors"],
  ["session.failed", "Failed"],
  ["session.cancelled", "Cancelled"],
  ["session.rejected", "Rejected"],
  ["session.paused", "Paused itself"],
];
const DOCUMENT_TYPES = ".zip,.txt,.md,.markdown,.csv,.json,.html,.htm,.pdf";
const BATCH_TYPES = ".csv,.xlsx,.txt,.tsv";

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  admin: false,
  sid: null, // the session on screen
  watchId: 0, // bumped by each watch: answers that arrive for an earlier one are dropped
  etag: null,
  version: null,
  summary: null,
  shownStatus: null,
  timer: null,
  failures: 0,
  sawActive: false, // notify only for a session started or seen unfinished here, not old news
  uploadingHere: new Set(), // sessions whose files this page is sending right now
  missingFor: null, // the session whose missing files were last listed
  rows: { filter: "", cursors: [null], page: 0, next: null, fetchId: 0 },
  failuresVersion: null,
  spoken: { at: 0, text: "", timer: null },
  notificationsTimer: null,
  operatorTimer: null,
};

// ---- formatting ---------------------------------------------------------------------------

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children.flat().filter((child) => child != null && child !== ""));
  return node;
}

const count = (n, [one, many]) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const plural = (n, word) => count(n, [word, `${word}s`]);
const label = (status) => status.replaceAll("_", " ");
const formatTime = (seconds) => new Date(seconds * 1000).toLocaleString();
const clock = (seconds) =>
  new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const badge = (status) => el("span", { className: "badge", dataset: { status } }, label(status));
const nouns = (s) => NOUNS[s?.job_type] ?? ["unit", "units"];
const finished = (c) => c.completed + c.failed + c.timeout + c.cancelled + c.skipped;

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

// 150 → "2m 30s"; 45 → "45s"; 3900 → "1h 5m".
function formatSpan(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// ---- API ----------------------------------------------------------------------------------

async function api(path, { method = "GET", body, etag } = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(new URL(path, document.baseURI), {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Error("The server does not answer (offline, or the server is down).");
  }
  if (response.status === 304) return { notModified: true };
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data?.error?.message ?? `The server answered HTTP ${response.status}.`;
    throw Object.assign(new Error(message), { status: response.status, code: data?.error?.code });
  }
  return { data, etag: response.headers.get("ETag") };
}

const sessionPath = (sid, tail = "") => `sessions/${encodeURIComponent(sid)}${tail}`;

// Worth retrying: no answer at all (no status), overload, server errors. A 4xx stays a 4xx.
const retryable = (error) => !error.status || error.status >= 500 || error.status === 429;

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
  $("error").focus?.();
}

function reportError(error) {
  if (error.status === 401) askForToken(error.message);
  else showError(error.message);
}

// ---- speaking to screen readers -------------------------------------------------------------

// The one aria-live region: progress at most every ANNOUNCE_EVERY_MS (the latest text wins),
// anything `urgent` (an ending, a control's outcome) at once.
function announce(text, urgent = false) {
  const spoken = state.spoken;
  clearTimeout(spoken.timer);
  const say = () => {
    if (text === spoken.text) return;
    $("announce").textContent = text;
    Object.assign(spoken, { at: Date.now(), text });
  };
  const wait = spoken.at + ANNOUNCE_EVERY_MS - Date.now();
  if (urgent || wait <= 0) say();
  else spoken.timer = setTimeout(say, wait);
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

function tokenClaims(token) {
  // A local token starts with base64url JSON claims; a JWT's second part holds them.
  const parts = token.split(".");
  const part = parts.length === 3 ? parts[1] : parts[0];
  try {
    return JSON.parse(atob(part.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    return {};
  }
}

function askForToken(reason) {
  clearTimeout(state.timer);
  state.watchId += 1;
  for (const id of ["upload", "session", "sessions", "account", "notifications", "operator"]) {
    $(id).hidden = true;
  }
  $("auth-reason").textContent = reason ? `The token was not accepted: ${reason}` : "";
  $("auth-reason").hidden = !reason;
  $("auth").hidden = false;
  $("token").focus();
}

function signedIn() {
  const claims = tokenClaims(state.token);
  const user = claims["cognito:username"] ?? claims.sub;
  $("whoami").textContent = user ? `Signed in as ${user}` : "Signed in";
  for (const id of ["upload", "sessions", "account"]) $(id).hidden = false;
  $("auth").hidden = true;
  const sid = new URLSearchParams(location.search).get("session");
  if (sid) watch(sid);
  loadSessions();
  loadNotifications();
  findOutIfOperator();
}

// ---- starting a session -------------------------------------------------------------------

const jobType = () => document.querySelector("input[name=job]:checked").value;
const promptSource = () => document.querySelector("input[name=source]:checked").value;
const pastedPrompts = () =>
  $("prompts-text").value.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);

function showJobChoice() {
  const prompts = jobType() === "prompts";
  const paste = prompts && promptSource() === "paste";
  $("prompt-source").hidden = !prompts;
  $("prompt-options").hidden = !prompts;
  $("column-row").hidden = paste;
  $("paste-box").hidden = !paste;
  $("drop-zone").hidden = paste;
  const files = $("files");
  files.accept = prompts ? BATCH_TYPES : DOCUMENT_TYPES;
  files.multiple = !prompts;
  $("file-types").textContent = prompts
    ? "One batch: .csv or .xlsx with a prompt column, or .txt with one prompt per line (≤ 10 MB)."
    : ".pdf .txt .md .csv .json .html, or a .zip (each file inside is processed on its own).";
  showPicked();
}

function showPicked() {
  const files = [...$("files").files];
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  $("picked").textContent = files.length ? `${plural(files.length, "file")}, ${formatBytes(bytes)}` : "";
}

function showPromptCount() {
  $("prompts-count").textContent = plural(pastedPrompts().length, "prompt");
}

function sessionRequest(files) {
  const job = jobType();
  const body = { job_type: job };
  const name = $("session-name").value.trim();
  if (name) body.name = name;
  else if (files.length > 1) body.name = `${files[0].name} and ${plural(files.length - 1, "more file")}`;
  const priority = Number($("priority").value);
  if (!Number.isInteger(priority) || priority < 1 || priority > 10) {
    throw new Error("Priority is a whole number from 1 to 10.");
  }
  body.priority = priority;
  if (!$("tell-me").checked) body.notify = { on_complete: false };
  if (job === "prompts") {
    const options = {};
    const column = $("prompt-column").value.trim();
    const template = $("template").value.trim();
    if (column && promptSource() === "file") options.prompt_column = column;
    if (template) options.template = template;
    if (Object.keys(options).length) body.options = options;
    if (promptSource() === "paste") {
      const prompts = pastedPrompts();
      if (prompts.length === 0) throw new Error("Paste at least one prompt, one per line.");
      body.prompts = prompts;
      return body;
    }
    if (files.length !== 1) throw new Error("Choose one batch file (CSV, XLSX or TXT).");
  } else if (files.length === 0) {
    throw new Error("Choose at least one file to upload.");
  }
  body.files = files.map((file) => ({
    name: file.name,
    size: file.size,
    content_type: file.type || "application/octet-stream",
  }));
  return body;
}

async function startSession(event) {
  event.preventDefault();
  $("error").hidden = true;
  const files = [...$("files").files];
  let body;
  try {
    body = sessionRequest(files);
  } catch (error) {
    return showError(error.message);
  }
  // Browsers ask for permission only from a user gesture, such as this click on Start.
  if (window.Notification?.permission === "default") Notification.requestPermission();
  $("start").disabled = true;
  try {
    const { data } = await api("sessions", { method: "POST", body });
    $("upload-form").reset();
    $("upload-list").replaceChildren();
    $("upload-status").textContent = "";
    showJobChoice();
    showPromptCount();
    if (data.uploads.length) state.uploadingHere.add(data.session_id);
    watch(data.session_id, true);
    loadSessions();
    if (data.uploads.length) await uploadAll(data.session_id, data.uploads, files);
  } catch (error) {
    reportError(error);
  } finally {
    $("start").disabled = false;
  }
}

async function uploadAll(sid, tickets, files) {
  // A ticket's ordinal is its file's place in `files` (uploadMissing numbers its own).
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
  state.uploadingHere.add(sid);
  try {
    await runPool(tasks, UPLOAD_CONCURRENCY);
  } finally {
    state.uploadingHere.delete(sid);
    if (sid === state.sid && state.summary) renderSummary(state.summary);
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

// ---- files that never arrived (a reload or a lost connection during the upload) -------------

async function showMissing(s) {
  const waiting = s.upload_deadline != null && s.files_received < s.files_total;
  const here = state.uploadingHere.has(s.session_id);
  $("missing").hidden = !waiting || here;
  if (!waiting || here) return;
  const left = s.files_total - s.files_received;
  const head =
    `${left} of ${plural(s.files_total, "file")} ${left === 1 ? "has" : "have"} not been received. ` +
    "If this page was reloaded or lost its connection during the upload, choose " +
    `${left === 1 ? "it" : "them"} again and upload before ${clock(s.upload_deadline)}; ` +
    "or cancel the session.";
  $("missing-text").textContent = head;
  if (state.missingFor === s.session_id) return;
  state.missingFor = s.session_id;
  try {
    const { data } = await api(sessionPath(s.session_id, "/uploads"));
    const names = data.files.map((f) => `${f.name} (${formatBytes(f.size)})`).join(", ");
    if (names) $("missing-text").textContent = `${head} Missing: ${names}.`;
  } catch (error) {
    state.missingFor = null;
    if (!retryable(error)) reportError(error);
  }
}

async function uploadMissing() {
  const sid = state.sid;
  const picked = [...$("missing-files").files];
  if (picked.length === 0) return showError("Choose the missing files first.");
  $("reupload").disabled = true;
  try {
    const { data } = await api(sessionPath(sid, "/uploads"), { method: "POST" });
    const tickets = [];
    const files = [];
    const unused = [...picked]; // each chosen file stands for one missing file at most
    for (const missing of data.files) {
      const at = unused.findIndex((f) => f.name === missing.name && f.size === missing.size);
      const file = at >= 0 ? unused.splice(at, 1)[0] : unused.find((f) => f.name === missing.name);
      if (!file) continue;
      if (file.size !== missing.size) {
        throw new Error(
          `${file.name} is ${formatBytes(file.size)}, but the session expects ` +
            `${formatBytes(missing.size)}: is it the same file?`,
        );
      }
      tickets.push({ ...missing.upload, ordinal: files.length });
      files.push(file);
    }
    if (tickets.length === 0) {
      const expected = data.files.map((f) => f.name).join(", ");
      throw new Error(`None of the chosen files is missing here. Expected: ${expected}.`);
    }
    $("missing").hidden = true;
    await uploadAll(sid, tickets, files);
  } catch (error) {
    reportError(error);
  } finally {
    $("reupload").disabled = false;
  }
}

// ---- watching a session -------------------------------------------------------------------

function watch(sid, startedHere = false) {
  const url = new URL(location.href);
  url.searchParams.set("session", sid);
  history.replaceState(null, "", url); // a reload, or coming back, resumes watching
  clearTimeout(state.timer);
  state.watchId += 1;
  Object.assign(state, { sid, etag: null, version: null, summary: null, shownStatus: null });
  state.failures = 0;
  Object.assign(state, { sawActive: startedHere, failuresVersion: null, missingFor: null });
  state.rows = { filter: "", cursors: [null], page: 0, next: null, fetchId: state.rows.fetchId + 1 };
  $("filter").value = "";
  $("session").hidden = true; // until the first answer: no numbers from the previous session
  for (const a of $("session-list").querySelectorAll("a")) {
    if (a.dataset.sid === sid) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  poll();
}

function schedulePoll(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, delay);
}

async function poll() {
  const { sid, watchId } = state;
  let delay = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
  try {
    const answer = await api(sessionPath(sid), { etag: state.etag });
    if (watchId !== state.watchId) return;
    if (state.failures) {
      state.failures = 0;
      $("connection").hidden = true;
      announce("Connected again.", true);
    }
    if (!answer.notModified) {
      const summary = answer.data;
      state.summary ??= summary; // what the units are called, for the first page of rows
      if (summary.version !== state.version) await refreshRows();
      if (watchId !== state.watchId) return;
      show(summary, answer.etag);
      if (TERMINAL.has(summary.status)) return finish(summary);
      state.sawActive = true;
    }
  } catch (error) {
    if (watchId !== state.watchId) return;
    if (!retryable(error)) return reportError(error);
    state.failures += 1;
    delay = Math.min(POLL_MS * 2 ** state.failures, MAX_RETRY_MS);
    const text = `Reconnecting… ${error.message} Next try in ${Math.round(delay / 1000)} s.`;
    $("connection").textContent = text;
    $("connection").hidden = false;
    if (state.failures === 1) announce("Lost contact with the server; reconnecting.", true);
  }
  schedulePoll(delay);
}

function show(summary, etag) {
  const before = state.shownStatus;
  renderSummary(summary);
  // Remembered only once all is on screen: after a failed row fetch, the next poll retries.
  Object.assign(state, { etag, version: summary.version, summary, shownStatus: summary.status });
  if (before !== summary.status) {
    announce(`${summary.name || "Session"}: ${label(summary.status)}. ${stepText(summary)}`, true);
  } else {
    announce(stepText(summary));
  }
}

function renderSummary(s) {
  const [one, many] = nouns(s);
  $("session").hidden = false;
  $("session-title").textContent = s.name || "Untitled session";
  $("session-status").replaceWith(Object.assign(badge(s.status), { id: "session-status" }));
  const kind = label(s.job_type);
  const usage = s.usage?.tokens_in || s.usage?.tokens_out
    ? ` · ${s.usage.tokens_in.toLocaleString()} tokens in, ${s.usage.tokens_out.toLocaleString()} out`
    : "";
  $("session-meta").textContent =
    `${kind} · priority ${s.priority} · started ${formatTime(s.created_at)}${usage} · id ${s.session_id}`;
  renderLinks(s);
  $("overall").value = s.progress;
  $("overall").setAttribute("aria-valuetext", `${Math.floor(s.progress)}%`);
  $("step").textContent = stepText(s);
  $("counts").replaceChildren(...COUNTS.filter((n) => n !== "skipped" || s.counts.skipped)
    .map((name) => countItem(name, s.counts[name])));
  showMissing(s);
  const timedOut = s.timed_out && s.files_received < s.files_total && s.upload_deadline == null;
  $("timed-out").hidden = !(s.timed_out && (timedOut || s.counts.timeout));
  $("timed-out").textContent = timedOut
    ? `Only ${s.files_received} of ${plural(s.files_total, "file")} arrived before the upload ` +
      "window closed; the missing ones will not be processed."
    : `${count(s.counts.timeout, [one, many])} ran out of time (a retry gives each a fresh start).`;
  $("paused-why").hidden = s.status !== "paused";
  $("paused-why").textContent = pausedText(s);
  $("rejected").hidden = !s.error;
  if (s.error) $("rejected").textContent = rejectedText(s.error);
  const outcome = TERMINAL.has(s.status) && s.status !== "rejected";
  $("outcome").hidden = !outcome;
  $("outcome").dataset.status = s.status;
  $("summary").textContent = outcome ? outcomeText(s) : "";
  renderControls(s);
  loadFailures(s);
  document.title = `${Math.floor(s.progress)}% · ${s.name || "session"} — chute`;
}

function renderLinks(s) {
  const links = [];
  if (s.parent_id) links.push("Follows up on ", sessionLink(s.parent_id, "the parent session"));
  if (s.children?.length) {
    if (links.length) links.push(" · ");
    links.push("Follow-ups: ");
    s.children.forEach((child, i) => {
      if (i) links.push(", ");
      links.push(sessionLink(child, s.children.length > 1 ? `#${i + 1}` : "the summaries"));
    });
  }
  $("session-links").replaceChildren(...links);
  $("session-links").hidden = links.length === 0;
}

function sessionLink(sid, text) {
  const link = el("a", { href: `?session=${encodeURIComponent(sid)}` }, text);
  link.addEventListener("click", (event) => {
    event.preventDefault();
    watch(sid);
  });
  return link;
}

function countItem(status, n) {
  const strong = el("strong", {}, n.toLocaleString());
  return el("li", { className: n ? "" : "zero", dataset: { status } }, strong, ` ${label(status)}`);
}

// The current step in words: "Processing rows… 45 of 300 (15%) · 2m 30s left".
function stepText(s) {
  const [one, many] = nouns(s);
  const c = s.counts;
  const done = finished(c);
  const share = `${done.toLocaleString()} of ${count(s.total, [one, many])} (${Math.floor(s.progress)}%)`;
  switch (s.status) {
    case "uploading":
      return `Uploading… ${s.files_received} of ${plural(s.files_total, "file")} received.`;
    case "processing": {
      if (s.total === 0) {
        return s.job_type === "prompts" ? "Reading the batch…" : "Reading the uploads…";
      }
      const parts = [`Processing ${many}… ${share}`];
      if (s.files_received < s.files_total) {
        parts.push(`${s.files_received} of ${s.files_total} uploads received`);
      }
      parts.push(s.eta_seconds == null ? "estimating time left" : `${formatSpan(s.eta_seconds)} left`);
      return parts.join(" · ");
    }
    case "paused":
      return `Paused at ${share}; ${c.running ? `${c.running} running finishing, ` : ""}nothing new starts.`;
    case "cancelling":
      return `Cancelling… waiting for ${count(c.running, [one, many])} still running.`;
    case "rejected":
      return "Nothing was processed: the input was refused.";
    default: {
      const took = s.done_at != null ? ` in ${formatSpan(s.done_at - s.created_at)}` : "";
      return `Finished${took}: ${share}.`;
    }
  }
}

// "299 of 300 done, 1 failed" — said plainly, with every kind of problem.
function outcomeText(s) {
  const [one, many] = nouns(s);
  const c = s.counts;
  if (s.status === "completed") {
    const skipped = c.skipped ? ` (${c.skipped} skipped: not a kind chute reads)` : "";
    return `All ${count(s.total, [one, many])} done${skipped}.`;
  }
  const problems = [
    [c.failed, "failed"],
    [c.timeout, "timed out"],
    [c.cancelled, "cancelled"],
    [c.skipped, "skipped"],
  ].filter(([n]) => n > 0);
  const head = `${c.completed.toLocaleString()} of ${s.total.toLocaleString()} done`;
  return [head, ...problems.map(([n, what]) => `${n.toLocaleString()} ${what}`)].join(", ");
}

function pausedText(s) {
  if (s.pause_reason !== "failure_rate") {
    return "Paused: nothing new starts until you resume. Running units finish.";
  }
  const [, many] = nouns(s);
  const c = s.counts;
  const bad = c.failed + c.timeout;
  return (
    `This session paused itself: ${bad} of the ${finished(c)} ${many} finished so far failed ` +
    "or timed out, which usually means a problem shared by all of them. Look at the failures " +
    "below, then Resume to go on, or Cancel."
  );
}

function rejectedText(error) {
  const where = [];
  if (error.details?.row != null) where.push(`row ${error.details.row}`);
  if (error.details?.column != null) where.push(`column ${error.details.column}`);
  const at = where.length ? ` (${where.join(", ")})` : "";
  return `The input was refused: ${error.message}${at} [${error.code}]`;
}

function renderControls(s) {
  const bad = s.counts.failed + s.counts.timeout;
  const can = {
    pause: ACTIVE.has(s.status),
    resume: s.status === "paused",
    cancel: ACTIVE.has(s.status) || s.status === "paused",
    retry: bad > 0 && !["cancelled", "cancelling", "rejected", "paused"].includes(s.status),
  };
  for (const [action, allowed] of Object.entries(can)) $(action).hidden = !allowed;
  $("retry").textContent = `Retry failed (${bad.toLocaleString()})`;
  const downloadable = s.total > 0;
  for (const button of document.querySelectorAll("button[data-format]")) {
    button.disabled = !downloadable;
  }
}

async function control(action) {
  const sid = state.sid;
  const button = $(action);
  button.disabled = true;
  // A person asking to retry the failures means all of them, not only the ones that may pass.
  const tail = action === "retry" ? "/retry?all=true" : `/${action}`;
  if (action === "cancel" && !confirm("Cancel this session? Units not yet processed will not be.")) {
    button.disabled = false;
    return;
  }
  try {
    const { data } = await api(sessionPath(sid, tail), { method: "POST" });
    if (sid !== state.sid) return;
    const words = { pause: "Paused", resume: "Resumed", cancel: "Cancelled", retry: "Retrying" };
    announce(`${words[action]}. ${stepText(data)}`, true);
    state.sawActive = !TERMINAL.has(data.status);
    state.etag = null; // poll again from here, terminal or not
    await refreshRows();
    show(data, null);
    $("missing").hidden = true;
    if (!TERMINAL.has(data.status)) schedulePoll(POLL_MS);
    loadSessions();
  } catch (error) {
    reportError(error);
  } finally {
    button.disabled = false;
  }
}

async function download(format) {
  const sid = state.sid;
  const status = $("download-status");
  status.textContent = `Preparing the ${format.toUpperCase()}…`;
  try {
    // The API answers the export's presigned link; the browser then downloads it from storage.
    const { data } = await api(sessionPath(sid, `/results?format=${format}`));
    const link = el("a", { href: data.url, download: "" });
    document.body.append(link);
    link.click();
    link.remove();
    status.textContent = `${format.toUpperCase()} ready: your browser is downloading it.`;
  } catch (error) {
    status.textContent = "";
    reportError(error);
  }
}

function finish(summary) {
  if (state.sawActive) notify(summary);
  state.sawActive = false;
  loadSessions();
  loadNotifications();
}

function notify(summary) {
  const title = `${summary.name || "Your session"}: ${label(summary.status)}`;
  const body =
    summary.status === "rejected" && summary.error
      ? rejectedText(summary.error)
      : `${outcomeText(summary)}.`;
  if (window.Notification?.permission === "granted") {
    try {
      const note = new Notification(title, { body, tag: summary.session_id });
      note.onclick = () => {
        window.focus();
        if (state.sid !== summary.session_id) watch(summary.session_id);
        $("session").scrollIntoView();
        note.close();
      };
      return;
    } catch {
      // Chrome on Android only notifies from a service worker: fall back to the banner.
    }
  }
  $("banner").dataset.status = summary.status;
  $("banner-text").textContent = `${title}. ${body}`;
  $("banner").hidden = false;
}

// ---- what failed, with reasons --------------------------------------------------------------

async function loadFailures(s) {
  const bad = s.counts.failed + s.counts.timeout;
  const wanted = bad > 0 && (TERMINAL.has(s.status) || s.status === "paused");
  if (!wanted) {
    $("failures").replaceChildren();
    $("failures").hidden = true;
    state.failuresVersion = null;
    return;
  }
  if (state.failuresVersion === s.version) return;
  state.failuresVersion = s.version;
  const { watchId } = state;
  try {
    const units = [];
    for (const status of ["failed", "timeout"]) {
      if (!s.counts[status]) continue;
      const params = new URLSearchParams({ status, limit: FAILURES_SHOWN });
      const { data } = await api(sessionPath(s.session_id, `/files?${params}`));
      units.push(...data.items);
    }
    if (watchId !== state.watchId) return;
    units.sort((a, b) => a.ordinal.localeCompare(b.ordinal));
    const shown = units.slice(0, FAILURES_SHOWN);
    const items = shown.map((u) => {
      const why = u.error ? [el("code", {}, u.error.code), `: ${u.error.message}`] : label(u.status);
      return el("li", { dataset: { status: u.status } }, el("strong", {}, u.name), " — ", why);
    });
    if (bad > shown.length) {
      items.push(el("li", { className: "muted" }, `and ${bad - shown.length} more: filter the table below.`));
    }
    $("failures").replaceChildren(...items);
    $("failures").hidden = false;
    $("outcome").hidden = false;
    if (!TERMINAL.has(s.status)) $("summary").textContent = `${plural(bad, "unit")} did not complete:`;
  } catch (error) {
    state.failuresVersion = null;
    if (!retryable(error)) reportError(error);
  }
}

// ---- the unit table: one page at a time, by cursor ------------------------------------------

async function refreshRows() {
  const rows = state.rows;
  const fetchId = ++rows.fetchId;
  const { sid } = state;
  const params = new URLSearchParams({ limit: PAGE_SIZE });
  if (rows.filter) params.set("status", rows.filter);
  const cursor = rows.cursors[rows.page];
  if (cursor) params.set("cursor", cursor);
  $("session").setAttribute("aria-busy", "true");
  $("rows-status").textContent = "Loading…";
  try {
    const { data } = await api(sessionPath(sid, `/files?${params}`));
    // An answer for an earlier filter, page or session is dropped, not shown.
    if (fetchId !== rows.fetchId || sid !== state.sid) return;
    rows.next = data.next_cursor;
    renderRows(data.items);
  } finally {
    if (fetchId === rows.fetchId) {
      $("session").setAttribute("aria-busy", "false");
      $("rows-status").textContent = "";
    }
  }
}

function renderRows(items) {
  const rows = state.rows;
  const [, many] = nouns(state.summary);
  $("unit-rows").replaceChildren(...items.map(unitRow));
  $("no-rows").hidden = items.length > 0;
  $("no-rows").textContent = rows.filter
    ? `No ${label(rows.filter)} ${many}${rows.page ? " on this page" : ""}.`
    : `No ${many} yet: they appear as the uploads are read.`;
  const first = rows.page * PAGE_SIZE + 1;
  const range = rows.filter
    ? `Page ${rows.page + 1}`
    : `${many[0].toUpperCase()}${many.slice(1)} ${first}–${first + items.length - 1}`;
  $("page-label").textContent = items.length ? range : "";
  $("first-page").disabled = rows.page === 0;
  $("prev-page").disabled = rows.page === 0;
  $("next-page").disabled = !rows.next;
}

function turnPage(to) {
  const rows = state.rows;
  if (to === "next") {
    if (!rows.next) return;
    rows.cursors[rows.page + 1] = rows.next;
    rows.page += 1;
  } else {
    rows.page = to === "first" ? 0 : Math.max(0, rows.page - 1);
  }
  refreshRows().catch(reportError);
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
  return el("tr", { dataset: { status: u.status, ordinal: u.ordinal } }, name, ...rest);
}

const clip = (text, n = 80) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function resultText(result) {
  if (!result) return "";
  const answer = result.summary ?? result.enhanced_prompt ?? result.response;
  if (typeof answer === "string") {
    const tokens = result.tokens_out != null ? ` (${plural(result.tokens_out, "token")})` : "";
    return `${clip(answer.replace(/\s+/g, " ").trim())}${tokens}`;
  }
  const words = result.words != null ? plural(result.words, "word") : null;
  const pages = result.pages != null ? plural(result.pages, "page") : null;
  // A PDF with pages and no words is pictures of text: nothing to read without OCR.
  const scanned = result.type === "pdf" && result.words === 0 && result.pages ? "no text layer (scanned?)" : null;
  return [result.type, words, pages, scanned].filter(Boolean).join(" · ");
}

// ---- your sessions ------------------------------------------------------------------------

async function loadSessions() {
  try {
    const { data } = await api(`sessions?limit=${SESSIONS_SHOWN}`);
    $("session-list").replaceChildren(...data.items.map(sessionItem));
    $("no-sessions").hidden = data.items.length > 0;
  } catch (error) {
    if (!retryable(error)) reportError(error);
  }
}

function sessionItem(s) {
  const link = sessionLink(s.session_id, s.name || "Untitled session");
  link.dataset.sid = s.session_id;
  if (s.session_id === state.sid) link.setAttribute("aria-current", "page");
  const details = s.status === "uploading"
    ? `${s.files_received} of ${plural(s.files_total, "file")} uploaded`
    : `${Math.floor(s.progress)}% of ${count(s.total, nouns(s))}`;
  const muted = el("span", { className: "muted" }, `${details} · ${formatTime(s.created_at)}`);
  return el("li", {}, link, badge(s.status), muted);
}

// ---- notifications and preferences ----------------------------------------------------------

async function loadNotifications() {
  clearTimeout(state.notificationsTimer);
  try {
    const { data } = await api("me/notifications?limit=20");
    const seen = Number(localStorage.getItem("chute.seen") ?? 0);
    const unread = data.items.filter((n) => n.created_at > seen).length;
    $("unread").textContent = unread ? `(${unread} new)` : "";
    $("unread").hidden = !unread;
    $("notification-list").replaceChildren(...data.items.map(notificationItem));
    $("no-notifications").hidden = data.items.length > 0;
    if (!$("notifications").hidden && data.items.length) {
      localStorage.setItem("chute.seen", String(data.items[0].created_at));
    }
  } catch (error) {
    if (!retryable(error)) return reportError(error);
  }
  state.notificationsTimer = setTimeout(loadNotifications, NOTIFICATIONS_EVERY_MS);
}

function notificationItem(n) {
  const event = n.event.replace("session.", "");
  // The message is what the email says (locally: what the outbox printed).
  const text = el("details", {}, el("summary", {}, "Message"), el("pre", { className: "message" }, n.message));
  return el(
    "li",
    { dataset: { event } },
    el("span", { className: "badge", dataset: { status: event } }, label(event)),
    " ",
    sessionLink(n.session_id, n.subject),
    el("span", { className: "muted" }, ` · ${formatTime(n.created_at)}`),
    text,
  );
}

async function toggleNotifications() {
  const panel = $("notifications");
  panel.hidden = !panel.hidden;
  $("show-notifications").setAttribute("aria-expanded", String(!panel.hidden));
  if (panel.hidden) return;
  panel.scrollIntoView();
  await loadNotifications();
  if (!$("preferences").dataset.loaded) await loadPreferences();
}

async function loadPreferences() {
  try {
    const { data } = await api("me/preferences");
    $("preference-rows").replaceChildren(...EVENTS.map(([event, text]) => preferenceRow(event, text, data)));
    $("preferences").dataset.loaded = "yes";
  } catch (error) {
    reportError(error);
  }
}

function preferenceRow(event, text, prefs) {
  const box = (channel, what) => {
    const input = el("input", { type: "checkbox", name: channel, value: event });
    input.checked = prefs[channel].includes(event);
    input.ariaLabel = `${text}: ${what}`;
    return el("td", {}, input);
  };
  return el("tr", {}, el("th", { scope: "row" }, text), box("email", "email"), box("in_app", "in this page"));
}

async function savePreferences(event) {
  event.preventDefault();
  const chosen = (channel) =>
    [...document.querySelectorAll(`#preference-rows input[name=${channel}]:checked`)].map((i) => i.value);
  $("preferences-save").disabled = true;
  try {
    await api("me/preferences", { method: "PUT", body: { email: chosen("email"), in_app: chosen("in_app") } });
    $("preferences-status").textContent = "Saved.";
  } catch (error) {
    $("preferences-status").textContent = "";
    reportError(error);
  } finally {
    $("preferences-save").disabled = false;
  }
}

// ---- the operator's view (admins) -----------------------------------------------------------

// An operator's token says so (a local token's `adm`, Cognito's `admin` group): only they get the
// button; the API checks again on every call (403 admin_only).
function findOutIfOperator() {
  const claims = tokenClaims(state.token);
  const groups = claims["cognito:groups"] ?? [];
  const list = Array.isArray(groups) ? groups : String(groups).split(/[ ,]+/);
  state.admin = claims.adm === true || list.includes("admin");
  $("show-operator").hidden = !state.admin;
}

async function toggleOperator() {
  const panel = $("operator");
  panel.hidden = !panel.hidden;
  $("show-operator").setAttribute("aria-expanded", String(!panel.hidden));
  clearTimeout(state.operatorTimer);
  if (!panel.hidden) {
    panel.scrollIntoView();
    await loadOperator();
  }
}

async function loadOperator() {
  clearTimeout(state.operatorTimer);
  if ($("operator").hidden) return;
  try {
    const { data } = await api("admin/stats");
    renderOperator(data);
    $("operator-time").textContent = `as of ${new Date(data.generated_at * 1000).toLocaleTimeString()}`;
  } catch (error) {
    if (!retryable(error)) return reportError(error);
  }
  state.operatorTimer = setTimeout(loadOperator, document.hidden ? 60000 : OPERATOR_EVERY_MS);
}

function table(caption, head, rows) {
  if (rows.length === 0) return el("p", {}, el("strong", {}, caption), ": none.");
  return el(
    "div",
    { className: "table-wrap" },
    el(
      "table",
      {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c, i) =>
        el(i ? "td" : "th", i ? { dataset: { label: head[i] } } : { scope: "row" }, String(c)))))),
    ),
  );
}

function renderOperator(d) {
  const pairs = (object) => Object.entries(object ?? {});
  const age = (s) => (s == null ? "not known here" : formatSpan(s));
  const blocks = [
    table("Queues", ["Queue", "Waiting", "In flight", "Delayed", "Oldest message"],
      d.queues.map((q) => [q.name, q.visible, q.in_flight, q.delayed, age(q.oldest_age_s)])),
    table(`Sessions under way: ${d.sessions.active}${d.sessions.truncated ? " (first 500)" : ""}`,
      ["Status", "Sessions"], pairs(d.sessions.by_status)),
    table("Their units", ["Status", "Units"], pairs(d.units.by_status)),
    table("Failures by code", ["Code", "Units"], pairs(d.failures_by_code)),
    table("Stuck work", ["What", "Count"], pairs(d.stuck).map(([k, v]) => [label(k), v])),
    el("p", {}, `Units finished in the last ${formatSpan(d.throughput.window_s)}: ` +
      `${d.throughput.units_finished.toLocaleString()}.`),
  ];
  $("operator-body").replaceChildren(...blocks);
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
  $("upload-form").addEventListener("submit", startSession);
  for (const input of document.querySelectorAll("input[name=job], input[name=source]")) {
    input.addEventListener("change", showJobChoice);
  }
  $("files").addEventListener("change", showPicked);
  $("prompts-text").addEventListener("input", showPromptCount);
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
    Object.assign(state.rows, { filter: $("filter").value, cursors: [null], page: 0, next: null });
    refreshRows().catch(reportError);
  });
  $("first-page").addEventListener("click", () => turnPage("first"));
  $("prev-page").addEventListener("click", () => turnPage("prev"));
  $("next-page").addEventListener("click", () => turnPage("next"));
  for (const action of ["pause", "resume", "cancel", "retry"]) {
    $(action).addEventListener("click", () => control(action));
  }
  for (const button of document.querySelectorAll("button[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  $("reupload").addEventListener("click", uploadMissing);
  $("missing-cancel").addEventListener("click", () => control("cancel"));
  $("refresh-sessions").addEventListener("click", loadSessions);
  $("show-notifications").addEventListener("click", toggleNotifications);
  $("notifications-close").addEventListener("click", toggleNotifications);
  $("preferences-form").addEventListener("submit", savePreferences);
  $("show-operator").addEventListener("click", toggleOperator);
  $("operator-refresh").addEventListener("click", loadOperator);
  $("error-close").addEventListener("click", () => ($("error").hidden = true));
  $("banner-close").addEventListener("click", () => ($("banner").hidden = true));
  document.addEventListener("visibilitychange", () => {
    // Back to a tab that was polling slowly: ask now rather than at the slow poll's time.
    if (!document.hidden && state.sid && state.summary && !TERMINAL.has(state.summary.status)) {
      schedulePoll(0);
    }
  });
  window.addEventListener("online", () => state.failures && schedulePoll(0));
  window.addEventListener("beforeunload", (event) => {
    if (state.uploadingHere.size) event.preventDefault(); // leaving now would abort the uploads
  });
}

wire();
showJobChoice();
state.token = takeToken();
if (state.token) signedIn();
else askForToken();
