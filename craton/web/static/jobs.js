// Recent jobs, and a form to start one. The list refreshes itself while a job is active (a
// light GET of one page); a job's own page follows it live.
import {
  api, listAll, ApiError, JOB_FINISHED, h, jobBadge, miniBar, formatDuration, formatWhen, showError,
  signedIn, can,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const ACTIVE_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 15000;
const defaults = JSON.parse(document.body.dataset.defaults || "{}");
const regions = new Map();
let olderMarker = null;
let timer = null;

function jobRow(job) {
  const region = regions.get(job.region_id);
  return h("tr", { "data-job": String(job.id), "data-status": job.status },
    h("td", {}, h("a", { href: `/ui/jobs/${job.id}`, text: `#${job.id}` })),
    h("td", { text: region ? region.label : `region ${job.region_id}` }),
    h("td", {}, h("a", { href: `/ui/jobs/${job.id}`, class: "playbook", text: job.playbook })),
    h("td", {}, jobBadge(job.cancel_requested && !JOB_FINISHED.has(job.status) ? "cancelling" : job.status)),
    h("td", { class: "progress-col" }, miniBar(job.hosts)),
    h("td", {}, h("time", { dateTime: job.started_at || job.created_at, title: job.started_at || job.created_at, text: formatWhen(job.started_at || job.created_at) })),
    h("td", { text: formatDuration(job.duration) }));
}

async function refresh() {
  clearTimeout(timer);
  let page;
  try {
    page = await api("/v1/jobs?limit=25");
    $("jobs-error").hidden = true;
  } catch (error) {
    showError($("jobs-error"), error);
    timer = setTimeout(refresh, IDLE_REFRESH_MS);
    return;
  }
  const body = $("jobs").tBodies[0];
  const older = [...body.querySelectorAll("tr[data-older]")];
  body.replaceChildren(...page.items.map(jobRow), ...older);
  $("jobs-empty").hidden = page.items.length > 0;
  if (!older.length) {
    olderMarker = page.next ? new URL(page.next, location.href).searchParams.get("marker") : null;
    $("jobs-more").hidden = !olderMarker;
  }
  const active = page.items.some((job) => !JOB_FINISHED.has(job.status));
  $("recent-note").textContent = active ? "updating while jobs run" : "";
  timer = setTimeout(refresh, active ? ACTIVE_REFRESH_MS : IDLE_REFRESH_MS);
}

async function loadOlder() {
  if (!olderMarker) return;
  const page = await api(`/v1/jobs?limit=25&marker=${olderMarker}`);
  const body = $("jobs").tBodies[0];
  for (const job of page.items) {
    const row = jobRow(job);
    row.dataset.older = "";
    body.append(row);
  }
  olderMarker = page.next ? new URL(page.next, location.href).searchParams.get("marker") : null;
  $("jobs-more").hidden = !olderMarker;
}

async function loadRegions() {
  const [tenants, found] = await Promise.all([listAll("/v1/tenants?limit=1000").catch(() => []), listAll("/v1/regions?limit=1000")]);
  const tenantNames = new Map(tenants.map((t) => [t.id, t.name]));
  const select = $("start-form").region_id;
  for (const region of found) {
    const tenant = tenantNames.get(region.tenant_id);
    regions.set(region.id, { ...region, label: tenant ? `${tenant} / ${region.name}` : region.name });
  }
  select.replaceChildren(...[...regions.values()].map((region) =>
    h("option", { value: String(region.id), text: region.label, selected: region.id === defaults.region_id })));
}

function sourceKind(form) {
  return form.querySelector("input[name=source_kind]:checked").value;
}

function showKind(form) {
  const kind = sourceKind(form);
  for (const label of form.querySelectorAll("[data-kind]")) label.hidden = label.dataset.kind !== kind;
}

function jobBody(form) {
  const filters = {};
  for (const key of ["group", "name"]) if (form[key].value.trim()) filters[key] = form[key].value.trim();
  if (form.var.value.trim()) filters.var = [form.var.value.trim()];
  const source = sourceKind(form) === "url"
    ? { url: form.url.value.trim(), ...(form.ref.value.trim() ? { ref: form.ref.value.trim() } : {}) }
    : { path: form.path.value.trim() };
  const body = {
    region_id: Number(form.region_id.value), playbook: form.playbook.value.trim(), source, filters,
    layout: form.layout.value, check: form.check.checked,
  };
  if (form.forks.value) body.forks = Number(form.forks.value);
  return body;
}

function markFields(form, fields) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const names = { "source.path": "path", "source.url": "url", "source.ref": "ref", "filters.group": "group", "filters.name": "name", "filters.var": "var" };
  for (const field of Object.keys(fields)) {
    const input = form[names[field] || field.split(".").pop()];
    if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
  }
}

function wireForm() {
  const form = $("start-form");
  if (defaults.source_path) form.path.value = defaults.source_path;
  if (defaults.playbook) form.playbook.value = defaults.playbook;
  if (defaults.forks) form.forks.value = String(defaults.forks);
  for (const radio of form.querySelectorAll("input[name=source_kind]")) radio.addEventListener("change", () => showKind(form));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    $("start-error").hidden = true;
    try {
      const job = await api("/v1/jobs", { method: "POST", body: jobBody(form) });
      location.assign(`/ui/jobs/${job.id}`);
    } catch (error) {
      showError($("start-error"), error);
      if (error instanceof ApiError) markFields(form, error.fields);
      button.disabled = false;
    }
  });
}

async function main() {
  // The form is offered only to callers the policy lets start jobs (jobs:submit).
  const mayStart = can("jobs:submit");
  $("start-form").hidden = !mayStart;
  $("start-denied").hidden = mayStart;
  wireForm();
  $("jobs-more").addEventListener("click", () => loadOlder().catch((error) => showError($("jobs-error"), error)));
  try {
    await loadRegions();
  } catch (error) {
    showError($(mayStart ? "start-error" : "jobs-error"), error);
  }
  await refresh();
}

signedIn().then(main);
