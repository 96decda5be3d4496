// What every page shares: API calls with the caller's credentials, the SSE reader, the
// states' names and glyphs, and small formatting helpers. No dependencies.

// Who the pages act as, kept in this tab's sessionStorage only (never localStorage or a cookie:
// a credential must not outlive the tab, reach other tabs or ride along with requests
// another site's page makes): an API key or a Keystone token; under noauth, a tenant id.
const CREDENTIAL_KEY = "craton.credential";
const TENANT_KEY = "craton.tenant";

function stored(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

/** The headers a credential is sent as: an API key as a Bearer token, a Keystone token as
 * X-Auth-Token. Without one (noauth), the tenant chosen under "change" scopes the calls. */
export function authHeaders(credential = stored(CREDENTIAL_KEY)) {
  if (credential && credential.secret) {
    return credential.kind === "keystone"
      ? { "X-Auth-Token": credential.secret }
      : { Authorization: `Bearer ${credential.secret}` };
  }
  const tenant = stored(TENANT_KEY);
  return tenant ? { "X-Craton-Tenant": String(tenant) } : {};
}

/** An API error with the server's message and the fields it named. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.fields = error.fields || {};
  }

  describe() {
    const fields = Object.entries(this.fields).map(([field, why]) => `${field}: ${why}`);
    return fields.length ? `${this.message} (${fields.join("; ")})` : this.message;
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  // X-Craton-Request: a header no form of another site can send, so the server knows a
  // bodyless POST (cancel) came from this page.
  const headers = { Accept: "application/json", "X-Craton-Request": "1", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401) signInAgain(error);
    throw error;
  }
  return parsed;
}

/** Every item of a list, following its "next" links. */
export async function listAll(path) {
  const items = [];
  let next = path;
  while (next) {
    const page = await api(next);
    items.push(...page.items);
    next = page.next;
  }
  return items;
}

/**
 * Follows a job's Server-Sent Events over fetch (so the API's auth headers go with it):
 * resumes after the last event seen with Last-Event-ID whenever the connection drops or the
 * server restarts, and stops at the stream's "end".
 */
export class EventStream {
  constructor(url, { after = 0, onEvents, onEnd, onState }) {
    this.url = url;
    this.last = after;
    this.onEvents = onEvents;
    this.onEnd = onEnd;
    this.onState = onState || (() => {});
    this.retry = 1000;
    this.stopped = false;
    this.controller = null;
  }

  start() {
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    let failures = 0;
    while (!this.stopped) {
      this.onState(failures ? "reconnecting" : "connecting");
      try {
        const ended = await this.follow();
        if (ended) return;
        failures = 0;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          this.onState("error", error);
          return;
        }
        failures += 1;
      }
      if (this.stopped) return;
      this.onState("reconnecting");
      await sleep(Math.min(this.retry * Math.max(failures, 1), 5000));
    }
  }

  /** One connection: true once the server said the job's stream ended. */
  async follow() {
    this.controller = new AbortController();
    const response = await fetch(this.url, {
      headers: { Accept: "text/event-stream", "Last-Event-ID": String(this.last), ...authHeaders() },
      signal: this.controller.signal,
      cache: "no-store",
    });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch { body = null; }
      const error = new ApiError(response.status, body);
      if (response.status === 401) signInAgain(error);
      throw error;
    }
    this.onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      // Split once per chunk (a catch-up chunk holds hundreds of events); keep the tail.
      const blocks = (buffer + value).split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      for (const block of blocks) {
        if (this.take(block)) {
          this.stopped = true;
          this.controller.abort();
          return true;
        }
      }
    }
  }

  take(block) {
    let kind = "message";
    let id = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }
    if (kind === "end") {
      this.onEnd(data.length ? JSON.parse(data.join("\n")) : {});
      return true;
    }
    if (!data.length) return false;
    const event = JSON.parse(data.join("\n"));
    if (id !== null) this.last = Number(id);
    this.onEvents([event]);
    return false;
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Each host state: how it is named, and a glyph so colour is never the only signal. */
export const STATES = {
  ok: { label: "ok", glyph: "✓" },
  changed: { label: "changed", glyph: "±" },
  failed: { label: "failed", glyph: "✕" },
  unreachable: { label: "unreachable", glyph: "⊘" },
  skipped: { label: "skipped", glyph: "↷" },
  running: { label: "running", glyph: "▸" },
  pending: { label: "pending", glyph: "·" },
};
export const STATE_ORDER = ["ok", "changed", "failed", "unreachable", "skipped", "running", "pending"];
export const FINISHED = new Set(["ok", "changed", "failed", "unreachable", "skipped"]);
export const JOB_FINISHED = new Set(["succeeded", "failed", "cancelled"]);

/** Build an element: h("a", {href: "/x", class: "y"}, "text", child…). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      element.setAttribute(key, value === true ? "" : value);
    } else element[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function badge(status) {
  const meta = STATES[status] || { label: status, glyph: "" };
  return h("span", { class: "state", "data-status": status },
    h("span", { class: "glyph", "aria-hidden": "true", text: meta.glyph }), ` ${meta.label}`);
}

export function jobBadge(status) {
  return h("span", { class: "status-badge", "data-status": status, text: status });
}

/** How many of ``counts``' hosts have finished. */
export function finishedCount(counts) {
  return STATE_ORDER.filter((s) => FINISHED.has(s)).reduce((n, s) => n + (counts[s] || 0), 0);
}

/** "3 ok, 1 failed" — the counts in words. */
export function countsText(counts) {
  return STATE_ORDER.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ") || "no hosts";
}

/** A bar's segments, one per state with hosts (pending is the bar's own background). */
export function barSegments(counts) {
  return STATE_ORDER.filter((s) => s !== "pending" && counts[s]).map((s) =>
    h("span", { class: "seg", "data-status": s, style: `width:${(100 * counts[s]) / counts.total}%`, title: `${counts[s]} ${s}` }));
}

/** A small stacked bar of a job's hosts per state, with its text alternative. */
export function miniBar(counts) {
  const bar = h("div", { class: "bar mini", role: "img", "aria-label": countsText(counts) }, ...barSegments(counts));
  return h("div", { class: "mini-wrap" }, bar, h("span", { class: "mini-text", text: `${finishedCount(counts)}/${counts.total || 0}` }));
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

export function formatWhen(iso) {
  if (!iso) return "–";
  const when = new Date(iso);
  const ago = (Date.now() - when.getTime()) / 1000;
  if (ago < 60) return "just now";
  if (ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `${Math.floor(ago / 3600)} h ago`;
  return when.toLocaleString();
}

export function showError(element, error) {
  element.textContent = error instanceof ApiError ? error.describe() : String(error.message || error);
  element.hidden = false;
}

// --- who the pages act as ------------------------------------------------------------------

let identity = null;

/** Whether the signed-in caller holds ``permission`` (a policy rule such as jobs:cancel), as
 * GET /v1/whoami said: the pages offer only the actions the caller may take. */
export function can(permission) {
  return Boolean(identity && identity.permissions.includes(permission));
}

async function whoami(headers) {
  const response = await fetch("/v1/whoami", {
    headers: { Accept: "application/json", ...headers }, cache: "no-store",
  });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return { response, body };
}

/**
 * Resolves with the caller (GET /v1/whoami) once the API accepts this tab's credentials,
 * after showing who it is in the top bar and revealing the page. When the API wants
 * credentials (401) it shows the sign-in form instead and never resolves: signing in reloads
 * the page.
 */
export async function signedIn() {
  let answer;
  try {
    answer = await whoami(authHeaders());
  } catch (error) {
    showSignIn(null, `Cannot reach the API: ${error.message || error}`);
    return new Promise(() => {});
  }
  const { response, body } = answer;
  if (!response.ok) {
    // A 401 without a credential is the usual first visit: just the form. With one, or any
    // other refusal (a token whose project has no tenant), say why.
    const error = new ApiError(response.status, body);
    const held = stored(CREDENTIAL_KEY);
    if (response.status === 401) sessionStorage.removeItem(CREDENTIAL_KEY);
    const why = response.status !== 401 ? error.describe()
      : held ? `Signed out: ${error.describe()}` : null;
    showSignIn(response.headers.get("WWW-Authenticate"), why);
    return new Promise(() => {});
  }
  identity = body;
  showIdentity(body);
  document.getElementById("content").hidden = false;
  return body;
}

function showIdentity(who) {
  const tenant = who.tenant
    ? `tenant ${who.tenant.name ?? `#${who.tenant.id}`}` : "cloud admin (every tenant)";
  const roles = who.tenant && who.roles.length ? ` · ${who.roles.join(", ")}` : "";
  document.body.dataset.auth = who.auth_strategy;
  document.getElementById("who-label").textContent =
    who.auth_strategy === "noauth" ? "noauth, acting as" : "signed in as";
  document.getElementById("who-user").textContent = who.auth_strategy === "noauth" ? "" : who.user;
  document.getElementById("who-tenant").textContent = `${tenant}${roles}`;
  document.getElementById("who").hidden = false;
  document.getElementById("sign-out").hidden = who.auth_strategy === "noauth";
  document.getElementById("scope").hidden = who.auth_strategy !== "noauth";
  const form = document.getElementById("scope-form");
  form.tenant.value = stored(TENANT_KEY) || "";
}

/** The sign-in form, with the credential the server asks for (its WWW-Authenticate
 * challenge: Keystone or Bearer) chosen, and why the last attempt failed. */
function showSignIn(challenge, problem) {
  identity = null;
  document.getElementById("content").hidden = true;
  document.getElementById("who").hidden = true;
  const form = document.getElementById("signin-form");
  if (challenge && /^keystone\b/i.test(challenge)) form.kind.value = "keystone";
  showKindLabel(form);
  const error = document.getElementById("signin-error");
  error.hidden = !problem;
  error.textContent = problem || "";
  document.getElementById("signin").hidden = false;
  form.secret.focus();
}

function showKindLabel(form) {
  document.getElementById("signin-secret-label").textContent =
    form.kind.value === "keystone" ? "Keystone token" : "API key";
}

/** A call answered 401 after signing in (the key was revoked or expired, the token expired):
 * forget the credential and ask for a new one. */
function signInAgain(error) {
  if (!stored(CREDENTIAL_KEY)) return;
  sessionStorage.removeItem(CREDENTIAL_KEY);
  showSignIn(null, `Signed out: ${error.describe()}`);
}

function wireIdentity() {
  const form = document.getElementById("signin-form");
  for (const radio of form.querySelectorAll("input[name=kind]")) {
    radio.addEventListener("change", () => showKindLabel(form));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const credential = { kind: form.kind.value, secret: form.secret.value.trim() };
    const error = document.getElementById("signin-error");
    error.hidden = true;
    if (!credential.secret) {
      error.textContent = `Enter ${credential.kind === "keystone" ? "a Keystone token" : "an API key"}.`;
      error.hidden = false;
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { response, body } = await whoami(authHeaders(credential));
      if (!response.ok) {
        error.textContent = new ApiError(response.status, body).describe();
        error.hidden = false;
        return;
      }
      sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify(credential));
      location.reload();
    } catch (failure) {
      error.textContent = `Cannot reach the API: ${failure.message || failure}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(CREDENTIAL_KEY);
    location.reload();
  });
  document.getElementById("scope-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const tenant = event.target.tenant.value.trim();
    if (tenant) sessionStorage.setItem(TENANT_KEY, JSON.stringify(tenant));
    else sessionStorage.removeItem(TENANT_KEY);
    location.reload();
  });
}

wireIdentity();
