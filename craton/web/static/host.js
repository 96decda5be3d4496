// A host: what it is, where it is at (its last job, the task it is in or stopped at), and
// its jobs with what became of it in each.
import { api, h, badge, jobBadge, formatWhen, showError, signedIn } from "./common.js";

const hostId = Number(document.body.dataset.hostId);
const $ = (id) => document.getElementById(id);
let nextPage = null;

function fact(term, value) {
  return [h("dt", { text: term }), h("dd", {}, value ?? "–")];
}

function reachability(status) {
  if (status.reachable === null) return "unknown (no job has reached it yet)";
  const seen = status.last_seen_at ? `, last seen ${formatWhen(status.last_seen_at)}` : "";
  return status.reachable ? `reachable${seen}` : `unreachable at its last job${seen}`;
}

function where(status) {
  const job = status.job;
  if (!job) return [h("span", { text: "Not in any job yet." })];
  const link = h("a", { href: `/ui/jobs/${job.id}`, text: `job #${job.id}` });
  const finished = !["pending", "running"].includes(job.result);
  return [
    badge(job.result), " ",
    finished ? "in " : "now in ", link, ` (${job.playbook}, `, jobBadge(job.status), ")",
    job.task ? h("span", {}, finished ? " — last task " : " — at ", h("strong", { text: job.task })) : null,
    job.message ? h("pre", { class: "message", text: job.message }) : null,
  ];
}

function jobRow(entry) {
  return h("tr", { "data-status": entry.status },
    h("td", {}, h("a", { href: `/ui/jobs/${entry.job_id}`, text: `#${entry.job_id}` })),
    h("td", { text: entry.playbook }),
    h("td", {}, jobBadge(entry.job_status)),
    h("td", {}, badge(entry.status)),
    h("td", { text: entry.current_task || "" }),
    h("td", { class: "message", text: entry.message || "" }),
    h("td", { text: formatWhen(entry.finished_at) }));
}

/** The host's resolved variables, read with this tab's credentials (a plain link to /v1 would
 * go without them) and shown as the API answers them. */
function variablesButton() {
  const button = h("button", { type: "button", class: "link", text: "show resolved, with provenance (JSON)" });
  button.addEventListener("click", async () => {
    try {
      const variables = await api(`/v1/hosts/${hostId}/variables?resolved=true`);
      button.replaceWith(h("pre", { class: "message", id: "host-variables", text: JSON.stringify(variables, null, 2) }));
    } catch (error) {
      showError($("host-error"), error);
    }
  });
  return button;
}

async function loadJobs(url) {
  const page = await api(url);
  $("host-jobs").tBodies[0].append(...page.items.map(jobRow));
  $("host-jobs-empty").hidden = $("host-jobs").tBodies[0].rows.length > 0;
  nextPage = page.next;
  $("host-jobs-more").hidden = !nextPage;
}

async function main() {
  $("host-jobs-more").addEventListener("click", () => nextPage && loadJobs(nextPage).catch((e) => showError($("host-error"), e)));
  try {
    const [host, status] = await Promise.all([api(`/v1/hosts/${hostId}`), api(`/v1/hosts/${hostId}/status`)]);
    const region = await api(`/v1/regions/${host.region_id}`).catch(() => null);
    document.title = `${host.name} · Craton`;
    $("host-title").textContent = host.name;
    $("host-facts").replaceChildren(
      ...fact("Region", region ? region.name : String(host.region_id)),
      ...fact("Address", host.ip_address || host.fqdn),
      ...fact("Lifecycle", host.state),
      ...fact("Groups", (host.groups || []).join(", ") || "none"),
      ...fact("Reachability", reachability(status)),
      ...fact("Variables", variablesButton()),
    );
    $("host-where").replaceChildren(...where(status));
    if (status.job) {
      const result = $("host-result");
      result.replaceWith(badge(status.job.result));
    }
    await loadJobs(`/v1/hosts/${hostId}/jobs?limit=20`);
  } catch (error) {
    showError($("host-error"), error);
  }
}

signedIn().then(main);
