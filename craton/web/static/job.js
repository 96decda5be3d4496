// The cloud progress bar: a job's hosts, live. The page takes a snapshot (the job, its hosts,
// the sequence number of its latest event), then follows the job's event stream from there;
// events only mark hosts dirty, and the page is redrawn at most once per animation frame, so
// a thousand hosts reporting at once stay smooth. At the stream's end the page reconciles
// with the API, so what it shows last is exactly what GET /v1/jobs/{id} says.
import {
  api, listAll, EventStream, STATES, STATE_ORDER, FINISHED, JOB_FINISHED,
  h, badge, barSegments, countsText, finishedCount, formatDuration, showError, signedIn, can,
} from "./common.js";

const jobId = Number(document.body.dataset.jobId);
const $ = (id) => document.getElementById(id);

const COMPACT_AT = 120;            // more hosts than this: grid cells without names
const RELAYOUT_EVERY_MS = 1000;    // re-sorting moves cells: at most once a second
const ACTIVITY_LINES = 200;
const PROBLEM = new Set(["failed", "unreachable"]);
const STATE_RANK = Object.fromEntries(
  ["failed", "unreachable", "running", "pending", "skipped", "changed", "ok"].map((s, i) => [s, i]));
const byName = new Intl.Collator(undefined, { numeric: true }).compare;

const model = {
  job: null,
  hosts: new Map(),
  regionName: null,
  taskNow: null,          // the aggregate run's current task (layout=ansible)
  step: null,             // what the job is doing before hosts run
  skew: 0,                // this browser's clock minus the server's, in seconds
};
const view = { mode: "grid", groupBy: "", sort: "problems", filter: "" };
const redraw = { hosts: new Set(), layout: true, summary: true, lastLayout: 0, queued: false };
const activityQueue = [];
let stream = null;

// --- the model -------------------------------------------------------------------------------

function hostRecord(row) {
  return {
    name: row.name, hostId: row.host_id, status: row.status, task: row.current_task,
    message: row.message, groups: row.groups || [], startedAt: row.started_at,
    finishedAt: row.finished_at, cells: [], own: {}, version: 0,
  };
}

function apply(event) {
  const data = event.data || {};
  const host = event.host ? model.hosts.get(event.host) : null;
  switch (event.kind) {
    case "runner_on_start":
      if (host && !FINISHED.has(host.status)) {
        setHost(host, { status: "running", task: data.task || host.task, startedAt: host.startedAt || event.created_at });
      }
      break;
    case "runner_on_failed":
    case "runner_on_unreachable":
      if (host && !data.ignore_errors && !FINISHED.has(host.status)) {
        setHost(host, { task: data.task || host.task, message: data.msg || host.message });
      }
      break;
    case "host_result":
      if (host) setHost(host, { status: data.status, message: data.msg ?? host.message, finishedAt: event.created_at });
      break;
    case "host_skipped":
      if (host) setHost(host, { status: "skipped", message: data.msg, finishedAt: event.created_at });
      break;
    case "playbook_on_task_start":
      model.taskNow = data.task || null;
      redraw.summary = true;
      break;
    case "job":
      if (data.status) {
        model.job.status = data.status;
        if (data.status === "running" && !model.job.started_at) model.job.started_at = event.created_at;
        if (data.message) model.job.message = data.message;
      }
      if (data.step) model.step = stepText(data);
      if (data.cancel_requested_by) model.job.cancel_requested = true;
      redraw.summary = true;
      break;
    default:
      break;
  }
  activityQueue.push(event);
}

/** What a job's step event says, in words. */
function stepText(data) {
  if (data.step === "materialized") return "inventory bundle built";
  if (data.step === "wave") return `wave ${data.wave} of ${data.waves}: ${data.hosts} host${data.hosts === 1 ? "" : "s"}`;
  return "playbook source checked out";
}

function setHost(host, changes) {
  const before = host.status;
  Object.assign(host, changes);
  host.version += 1;
  redraw.hosts.add(host);
  redraw.summary = true;
  if (host.status !== before && rankOf(host) !== rankOf({ ...host, status: before })) redraw.layout = true;
  if (view.filter) redraw.layout = true;
}

function rankOf(host) {
  if (view.sort === "problems") return PROBLEM.has(host.status) ? 0 : 1;
  if (view.sort === "state") return STATE_RANK[host.status] ?? 9;
  return 0;
}

function counts() {
  const found = Object.fromEntries(STATE_ORDER.map((s) => [s, 0]));
  for (const host of model.hosts.values()) found[host.status] = (found[host.status] || 0) + 1;
  found.total = model.hosts.size;
  return found;
}

// --- drawing, once per frame ------------------------------------------------------------------

function schedule() {
  if (redraw.queued) return;
  redraw.queued = true;
  requestAnimationFrame(draw);
}

function draw(now) {
  redraw.queued = false;
  if (redraw.layout && now - redraw.lastLayout >= RELAYOUT_EVERY_MS) {
    layoutHosts();
    redraw.layout = false;
    redraw.lastLayout = now;
    redraw.hosts.clear();
  } else if (redraw.layout) {
    setTimeout(schedule, RELAYOUT_EVERY_MS - (now - redraw.lastLayout));
  }
  for (const host of redraw.hosts) for (const cell of host.cells) paintCell(cell, host);
  redraw.hosts.clear();
  if (redraw.summary) {
    drawSummary();
    redraw.summary = false;
  }
  drawActivity();
}

function drawSummary() {
  const job = model.job;
  const c = counts();
  const finished = finishedCount(c);
  const percent = c.total ? Math.floor((100 * finished) / c.total) : (JOB_FINISHED.has(job.status) ? 100 : 0);

  const status = $("job-status");
  status.dataset.status = job.status;
  status.textContent = job.cancel_requested && !JOB_FINISHED.has(job.status) ? "cancelling" : job.status;
  // Offered only to callers the policy lets cancel (jobs:cancel), while there is a job to stop.
  $("cancel").hidden = JOB_FINISHED.has(job.status) || job.cancel_requested || !can("jobs:cancel");
  $("job-message").hidden = !job.message;
  $("job-message").textContent = job.message || "";
  document.title = `${percent}% · Job ${job.id} ${job.status} · Craton`;

  $("percent").textContent = `${percent}%`;
  $("finished-text").textContent = `${finished} of ${c.total} hosts finished`;
  const bar = $("bar");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent}%: ${countsText(c)}`);
  bar.replaceChildren(...barSegments(c));

  $("legend").replaceChildren(...STATE_ORDER.map((s) =>
    h("li", { "data-status": s, class: c[s] ? "" : "zero" },
      h("span", { class: "swatch", "aria-hidden": "true", text: STATES[s].glyph }),
      h("span", { class: "count", text: String(c[s]) }), ` ${STATES[s].label}`)));

  $("now-text").textContent = nowText(c);
  drawProblems();
  tickElapsed();
}

function nowText(c) {
  const job = model.job;
  if (JOB_FINISHED.has(job.status)) {
    return `${job.status} in ${formatDuration(job.duration)}` + (job.message ? ` — ${job.message}` : "");
  }
  if (job.status === "pending") return model.step ? `${model.step}, waiting for the engine` : "queued, waiting for the engine";
  const tasks = new Map();
  for (const host of model.hosts.values()) {
    if (host.status === "running" && host.task) tasks.set(host.task, (tasks.get(host.task) || 0) + 1);
  }
  if (model.taskNow) {
    const wave = model.step && model.step.startsWith("wave") ? `${model.step.split(":")[0]} · ` : "";
    return `${wave}${model.taskNow} — ${c.running} host${c.running === 1 ? "" : "s"} running`;
  }
  if (!tasks.size) return c.running ? `${c.running} hosts starting` : (model.step || "starting");
  const top = [...tasks.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
  return top.map(([task, n]) => `${task} (${n} host${n === 1 ? "" : "s"})`).join(" · ");
}

function drawProblems() {
  const problems = [...model.hosts.values()].filter((host) => PROBLEM.has(host.status))
    .sort((a, b) => byName(a.name, b.name));
  $("problems").hidden = !problems.length;
  $("problems-title").textContent = `Needs attention (${problems.length})`;
  $("problem-list").replaceChildren(...problems.map((host) =>
    h("li", { "data-status": host.status, "data-host": host.name },
      badge(host.status), " ", hostLink(host), " ",
      h("span", { class: "muted", text: host.task ? `at “${host.task}”` : "" }),
      h("pre", { class: "message", text: host.message || "(no message)" }))));
}

function hostLink(host) {
  return host.hostId ? h("a", { href: `/ui/hosts/${host.hostId}`, class: "host-name", text: host.name })
    : h("span", { class: "host-name", text: host.name });
}

function tickElapsed() {
  const job = model.job;
  let seconds = job.duration;
  if (!JOB_FINISHED.has(job.status) && job.started_at) {
    seconds = Date.now() / 1000 - model.skew - Date.parse(job.started_at) / 1000;
  }
  $("elapsed").textContent = formatDuration(seconds ?? 0);
}

// --- the hosts: a grid or a table, grouped and sorted --------------------------------------

function visibleHosts() {
  const query = view.filter.trim().toLowerCase();
  const hosts = [...model.hosts.values()];
  const shown = query ? hosts.filter((host) => [host.name, host.status, host.task, host.message, ...host.groups]
    .some((text) => text && text.toLowerCase().includes(query))) : hosts;
  return shown.sort((a, b) => rankOf(a) - rankOf(b) || byName(a.name, b.name));
}

function sections(hosts) {
  if (view.groupBy !== "group") return [[null, hosts]];
  const groups = new Map();
  for (const host of hosts) {
    for (const group of host.groups.length ? host.groups : ["(no group)"]) {
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(host);
    }
  }
  return [...groups.entries()].sort((a, b) => byName(a[0], b[0]));
}

function layoutHosts() {
  const container = $("hosts");
  const hosts = visibleHosts();
  for (const host of model.hosts.values()) host.cells = [];
  const compact = model.hosts.size > COMPACT_AT;
  const kind = view.mode === "grid" ? "tile" : "row";
  const shape = `${view.mode}/${view.groupBy}/${compact}`;
  const parts = [];
  for (const [group, members] of sections(hosts)) {
    const roots = [];
    for (const host of members) {
      // A host's first place reuses its cell (moving a node is far cheaper than making one);
      // a host shown in several groups gets a fresh cell for each further place.
      let cell = host.cells.length ? null : host.own?.[kind];
      if (!cell) {
        cell = kind === "tile" ? makeTile(compact) : makeRow();
        if (!host.cells.length) host.own[kind] = cell;
      }
      if (cell.version !== host.version) paintCell(cell, host);
      host.cells.push(cell);
      roots.push(cell.root);
    }
    if (group === null && container.dataset.shape === shape) {
      reorder(container.querySelector(view.mode === "grid" ? ".grid" : "tbody"), roots);
      break;
    }
    const body = view.mode === "grid"
      ? h("div", { class: `grid${compact ? " compact" : ""}` })
      : h("tbody");
    body.append(...roots);
    const block = view.mode === "grid" ? body : h("table", { class: "hosts-table" },
      h("thead", {}, h("tr", {}, ...["State", "Host", "Groups", "Task", "Message", "Took"]
        .map((label) => h("th", { scope: "col", text: label })))), body);
    if (group === null) parts.push(block);
    else parts.push(h("section", { class: "group-block" }, groupHeading(group, members), block));
  }
  container.dataset.view = view.mode;
  if (parts.length || container.dataset.shape !== shape) container.replaceChildren(...parts);
  container.dataset.shape = shape;
  $("shown-count").textContent = hosts.length === model.hosts.size
    ? `${hosts.length} host${hosts.length === 1 ? "" : "s"}`
    : `${hosts.length} of ${model.hosts.size} hosts match “${view.filter}”`;
}

/** Put ``roots`` in ``body`` in this order, moving only the nodes out of place: a host that
 * fails moves to the top in one step instead of the whole grid being rebuilt. */
function reorder(body, roots) {
  const keep = new Set(roots);
  for (const child of [...body.children]) if (!keep.has(child)) child.remove();
  let at = body.firstElementChild;
  for (const root of roots) {
    if (root === at) at = at.nextElementSibling;
    else body.insertBefore(root, at);
  }
}

function groupHeading(group, members) {
  const tally = {};
  for (const host of members) tally[host.status] = (tally[host.status] || 0) + 1;
  const text = STATE_ORDER.filter((s) => tally[s]).map((s) => `${STATES[s].glyph} ${tally[s]} ${s}`).join("  ");
  return h("h3", { class: "group-title" }, group, " ", h("span", { class: "muted", text: `${members.length} · ${text}` }));
}

function makeTile(compact) {
  const glyph = h("span", { class: "glyph", "aria-hidden": "true" });
  const name = compact ? null : h("span", { class: "name" });
  const root = h("a", { class: "tile" }, glyph, name);
  return { root, glyph, name, kind: "tile" };
}

function makeRow() {
  const cells = Array.from({ length: 6 }, () => h("td"));
  return { root: h("tr", {}, ...cells), cells, kind: "row" };
}

function paintCell(cell, host) {
  const meta = STATES[host.status] || { label: host.status, glyph: "?" };
  cell.version = host.version;
  cell.root.dataset.status = host.status;
  cell.root.dataset.host = host.name;
  if (cell.kind === "tile") {
    const words = [host.name, meta.label, host.task, host.message].filter(Boolean);
    cell.glyph.textContent = meta.glyph;
    if (cell.name) cell.name.textContent = host.name;
    cell.root.title = words.join(" — ");
    cell.root.setAttribute("aria-label", words.join(", "));
    if (host.hostId) cell.root.href = `/ui/hosts/${host.hostId}`;
    return;
  }
  const [state, name, groups, task, message, took] = cell.cells;
  state.replaceChildren(badge(host.status));
  name.replaceChildren(hostLink(host));
  groups.textContent = host.groups.join(", ");
  task.textContent = host.task || "";
  message.textContent = host.message || "";
  message.className = PROBLEM.has(host.status) ? "message problem" : "message";
  took.textContent = host.startedAt && host.finishedAt
    ? formatDuration((Date.parse(host.finishedAt) - Date.parse(host.startedAt)) / 1000) : "";
}

// --- activity ---------------------------------------------------------------------------------

function activityLine(event) {
  const d = event.data || {};
  const who = event.host ? `${event.host}: ` : "";
  switch (event.kind) {
    case "runner_on_failed": return d.ignore_errors ? null : ["failed", `${who}${d.task} failed — ${d.msg || ""}`];
    case "runner_on_unreachable": return ["unreachable", `${who}unreachable at ${d.task} — ${d.msg || ""}`];
    case "runner_on_ok": return d.changed ? ["changed", `${who}${d.task} changed`] : null;
    case "host_result": return [event.data.status, `${who}finished ${event.data.status}`];
    case "host_skipped": return ["skipped", `${who}skipped — ${d.msg || ""}`];
    case "playbook_on_play_start": return ["info", `PLAY ${d.play || ""}`];
    case "playbook_on_task_start": return ["info", `TASK ${d.task || ""}`];
    case "audit": return ["info", `${who}recorded ${(d.variables || []).join(", ")}`];
    case "job":
      if (d.status) return [d.status, `job ${d.status}${d.message ? ` — ${d.message}` : ""}`];
      if (d.step) return ["info", stepText(d)];
      if (d.cancel_requested_by) return ["info", `cancel requested by ${d.cancel_requested_by}`];
      return null;
    default: return null;
  }
}

function drawActivity() {
  if (!activityQueue.length) return;
  const list = $("activity");
  const fresh = [];
  for (const event of activityQueue.splice(0)) {
    const line = activityLine(event);
    if (!line) continue;
    const time = event.created_at ? new Date(event.created_at).toLocaleTimeString([], { hour12: false }) : "";
    fresh.push(h("li", { "data-status": line[0] }, h("time", { text: time }), " ", line[1]));
  }
  if (!fresh.length) return;
  list.prepend(...fresh.slice(-ACTIVITY_LINES).reverse());
  while (list.childElementCount > ACTIVITY_LINES) list.lastElementChild.remove();
  $("activity-count").textContent = `latest ${list.childElementCount}`;
}

// --- loading and following --------------------------------------------------------------------

async function snapshot() {
  // The job first: its hosts, read after, are at least as new as its last event.
  const job = await api(`/v1/jobs/${jobId}`);
  const rows = await listAll(`/v1/jobs/${jobId}/hosts?limit=1000`);
  model.job = job;
  if (job.started_at && job.duration !== null) {
    model.skew = Date.now() / 1000 - Date.parse(job.started_at) / 1000 - job.duration;
  }
  model.hosts = new Map(rows.map((row) => [row.name, hostRecord(row)]));
  redraw.layout = true;
  redraw.lastLayout = 0;
  redraw.summary = true;
  return job;
}

function describeJob(job) {
  $("job-playbook").textContent = job.playbook;
  const source = job.source.url
    ? `${job.source.url}${job.source.ref ? ` @ ${job.source.ref}` : ""}`
    : (job.source.path || "built in");
  const pin = job.source.pin ? ` (${job.source.pin.slice(0, 19)})` : "";
  const filters = Object.entries(job.filters || {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
  const region = model.regionName ? `${model.regionName}` : `region ${job.region_id}`;
  $("job-meta").replaceChildren(...[
    h("span", {}, "on ", h("strong", { text: region })), " · ",
    h("span", { text: filters ? `hosts ${filters}` : "all hosts" }), " · ",
    h("span", { text: `source ${source}${pin}` }), " · ",
    h("span", { text: `${job.layout === "ansible" ? "one run for every host" : "runs in waves by depends_on"}, forks ${job.forks}` }),
    job.check ? h("span", { class: "tag", text: "check mode" }) : null,
    " · ", h("span", { text: `by ${job.created_by}` }),
  ].filter((part) => part !== null));
}

function setConnection(state) {
  const conn = $("conn");
  conn.dataset.state = state;
  conn.textContent = {
    connecting: "connecting…", live: "live", reconnecting: "reconnecting…", finished: "finished", error: "not following",
  }[state] || state;
}

async function recentActivity(lastEvent) {
  const page = await api(`/v1/jobs/${jobId}/events?after=${Math.max(0, lastEvent - ACTIVITY_LINES)}&limit=${ACTIVITY_LINES}`);
  activityQueue.push(...page.items.filter((event) => event.seq <= lastEvent));
}

async function finish() {
  setConnection("finished");
  const job = await snapshot();
  describeJob(job);
  schedule();
}

function follow(after) {
  stream = new EventStream(`/v1/jobs/${jobId}/events`, {
    after,
    onEvents: (events) => {
      for (const event of events) apply(event);
      schedule();
    },
    onEnd: () => { finish().catch((error) => showError($("job-error"), error)); },
    onState: (state, error) => {
      setConnection(state);
      if (error) showError($("job-error"), error);
    },
  }).start();
}

function wireControls() {
  $("filter").addEventListener("input", (event) => {
    view.filter = event.target.value;
    redraw.layout = true;
    redraw.lastLayout = 0;
    schedule();
  });
  for (const [id, key] of [["group-by", "groupBy"], ["sort", "sort"]]) {
    $(id).addEventListener("change", (event) => {
      view[key] = event.target.value;
      redraw.layout = true;
      redraw.lastLayout = 0;
      schedule();
    });
  }
  for (const button of document.querySelectorAll(".view-switch button")) {
    button.addEventListener("click", () => {
      view.mode = button.dataset.view;
      for (const other of document.querySelectorAll(".view-switch button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      redraw.layout = true;
      redraw.lastLayout = 0;
      schedule();
    });
  }
  const cancel = $("cancel");
  let armed = null;
  cancel.addEventListener("click", async () => {
    if (!armed) {
      cancel.textContent = "Click again to cancel";
      armed = setTimeout(() => { armed = null; cancel.textContent = "Cancel job"; }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    cancel.disabled = true;
    try {
      const job = await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" });
      model.job.cancel_requested = job.cancel_requested;
      redraw.summary = true;
      schedule();
    } catch (error) {
      showError($("job-error"), error);
    } finally {
      cancel.disabled = false;
      cancel.textContent = "Cancel job";
    }
  });
}

async function main() {
  wireControls();
  let job;
  try {
    job = await snapshot();
  } catch (error) {
    showError($("job-error"), error);
    setConnection("error");
    $("job-status").textContent = "unknown";
    return;
  }
  describeJob(job);
  api(`/v1/regions/${job.region_id}`).then((region) => {
    model.regionName = region.name;
    describeJob(model.job);
  }).catch(() => {});
  schedule();
  setInterval(() => { if (model.job && !JOB_FINISHED.has(model.job.status)) tickElapsed(); }, 1000);
  await recentActivity(job.last_event).catch(() => {});
  schedule();
  if (JOB_FINISHED.has(job.status)) setConnection("finished");
  else follow(job.last_event);
}

signedIn().then(main);
