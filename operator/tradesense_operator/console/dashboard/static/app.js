// The dashboard page: renders what the server computed; live updates come from /api/events (SSE).
"use strict";
const TOKEN = document.querySelector('meta[name="tradesense-token"]').content;
const state = { incidents: new Map(), order: [], selected: null, policies: { backupPolicies: [], scalingPolicies: [] } };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "onclick") node.addEventListener("click", value); else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message; box.hidden = !message;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Tradesense-Token": TOKEN },
    body: JSON.stringify(body || {}) });
  const data = await response.json();
  if (!response.ok) { showError(data.error || `HTTP ${response.status}`); return; }
  showError(""); upsert(data); render();
}

function upsert(incident) {
  if (!state.incidents.has(incident.name)) state.order.unshift(incident.name);
  state.incidents.set(incident.name, incident);
}

function renderList() {
  const list = document.getElementById("incidents");
  list.replaceChildren(...state.order.map((name) => {
    const i = state.incidents.get(name);
    return el("li", { "data-name": name, class: name === state.selected ? "selected" : "", onclick: () => { state.selected = name; render(); } },
      el("span", { class: "name" }, name, " ", el("span", { class: `phase ${i.phase}` }, i.phase)),
      el("span", { class: "sub" }, `${i.runbook} · ${i.severity} · respond by ${i.respondBy}`));
  }));
  if (!state.order.length) list.replaceChildren(el("li", { class: "hint" }, "No incidents."));
}

function renderStep(incident, step) {
  const node = el("li", { class: `step ${step.state}`, "data-step": step.id },
    el("div", { class: "line" }, el("b", {}, step.id), el("span", { class: `state ${step.state}` }, step.state),
      el("span", { class: "sub" }, `${step.action} ${step.target}`),
      step.attempts ? el("span", { class: "sub" }, `${step.attempts}/${step.allowedAttempts} attempts`) : "",
      step.duration ? el("span", { class: "sub" }, step.duration) : ""),
    el("div", { class: "desc" }, step.description));
  if (step.message) node.append(el("div", { class: "msg" }, step.message));
  if (step.waitsFor) node.append(el("div", { class: "waits" }, `waits for: ${step.waitsFor}`));
  const evidence = Object.entries(step.evidence);
  if (evidence.length) node.append(el("ul", { class: "evidence" }, ...evidence.map(([k, v]) => el("li", {}, `${k}: ${v}`))));
  const approvable = !incident.terminal && !step.approved && (step.state === "AwaitingApproval" || (step.state === "Pending" && step.destructive));
  if (approvable) node.append(el("button", { class: "approve", "data-approve": step.id,
    onclick: () => post(`/api/incidents/${encodeURIComponent(incident.name)}/approve`, { steps: [step.id] }) }, `Approve ${step.id}`));
  return node;
}

function renderDetail() {
  const pane = document.getElementById("detail");
  const incident = state.selected && state.incidents.get(state.selected);
  if (!incident) { pane.replaceChildren(el("p", { class: "hint" }, "Select an incident.")); return; }
  const header = el("div", { class: "line" }, el("h2", {}, `tsi/${incident.name}`),
    el("span", { class: `phase ${incident.phase}`, id: "incident-phase" }, incident.phase));
  if (!incident.terminal && !incident.cancelRequested) header.append(el("button", { class: "cancel", id: "cancel",
    onclick: () => { if (confirm(`Cancel tsi/${incident.name}?`)) post(`/api/incidents/${encodeURIComponent(incident.name)}/cancel`); } }, "Cancel incident"));
  pane.replaceChildren(header,
    el("p", { class: "sub" }, `${incident.runbook} · ${incident.severity} · respond by ${incident.respondBy}` +
      (incident.dryRun ? " · DRY RUN" : "") + (incident.cancelRequested && !incident.terminal ? " · cancel requested" : "")),
    el("p", {}, incident.message || ""),
    incident.steps.length ? el("ol", { class: "steps" }, ...incident.steps.map((s) => renderStep(incident, s)))
      : el("p", { class: "hint" }, "No plan yet."));
}

function renderPolicies() {
  const { backupPolicies, scalingPolicies } = state.policies;
  const box = document.getElementById("policies");
  const parts = [];
  if (backupPolicies.length) parts.push(el("table", {}, el("tr", {}, el("th", {}, "BackupPolicy"), el("th", {}, "Last backup"), el("th", {}, "Next run")),
    ...backupPolicies.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.status.lastSuccessfulBackup || "-"), el("td", {}, p.status.nextScheduleTime || "-")))));
  if (scalingPolicies.length) parts.push(el("table", {}, el("tr", {}, el("th", {}, "ScalingPolicy"), el("th", {}, "Current"), el("th", {}, "Desired")),
    ...scalingPolicies.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.status.currentReplicas ?? "-"), el("td", {}, p.status.desiredReplicas ?? "-")))));
  box.replaceChildren(...(parts.length ? parts : [el("p", { class: "hint" }, "No policies.")]));
}

function render() { renderList(); renderDetail(); renderPolicies(); }

async function loadOverview() {
  const response = await fetch("/api/overview");
  const data = await response.json();
  if (!response.ok) { showError(data.error); return; }
  state.policies = data;
  for (const incident of [...data.incidents].reverse()) upsert(incident);
  if (!state.selected && state.order.length) state.selected = state.order[0];
  render();
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { live.className = "live on"; live.textContent = "live"; });
  source.addEventListener("error", () => { live.className = "live off"; live.textContent = "reconnecting…"; });
  source.addEventListener("snapshot", (e) => {
    state.incidents.clear(); state.order = [];
    for (const incident of JSON.parse(e.data).reverse()) upsert(incident);
    if (state.selected && !state.incidents.has(state.selected)) state.selected = null;
    if (!state.selected && state.order.length) state.selected = state.order[0];
    render();
  });
  source.addEventListener("incident", (e) => { upsert(JSON.parse(e.data)); render(); });
  source.addEventListener("deleted", (e) => {
    const { name } = JSON.parse(e.data);
    state.incidents.delete(name); state.order = state.order.filter((n) => n !== name); render();
  });
  source.addEventListener("failure", (e) => showError(JSON.parse(e.data).error));
}

loadOverview().then(connect);
