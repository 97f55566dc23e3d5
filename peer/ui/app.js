// Shoal console: one page, routed by the URL's hash, polling the agent's
// /ui/api/ every second while a page is shown. Text from the cluster
// (names, paths, errors, logs) only ever goes into textContent.
"use strict";

let csrf = "";
let timer = null;
let route = "";

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function table(head, rows, id) {
  return h("table", id ? { id } : {},
    h("thead", {}, h("tr", {}, head.map(x => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function bytes(n) {
  if (n === undefined || n === null) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function dur(s) {
  if (s === undefined || s === null) return "-";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return (s / 60).toFixed(1) + " min";
}

function when(t) {
  if (!t) return "-";
  const d = typeof t === "number" ? new Date(t / 1e6) : new Date(t);
  return d.toLocaleString();
}

function pct(x) { return (100 * x).toFixed(0) + "%"; }

function bar(frac) {
  return h("span", { class: "bar", title: pct(frac) }, h("span", { style: { width: pct(Math.min(1, frac)) } }));
}

async function api(path, opts) {
  const r = await fetch("/ui/api/" + path, Object.assign({ credentials: "same-origin" }, opts || {}));
  if (r.status === 401) { location.reload(); throw new Error("logged out"); }
  const type = r.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body && body.error ? body.error : r.status + " " + r.statusText);
  return body;
}

function show(...kids) {
  const main = document.getElementById("main");
  main.replaceChildren(...kids.filter(k => k !== null && k !== undefined));
}

// ---- Cluster ----------------------------------------------------------

// consoleURL is the console of the member whose HTTP address is addr
// (HOST:PORT), with this page's scheme; a wildcard host is this page's.
function consoleURL(addr) {
  const m = /^(.*):(\d+)$/.exec(addr || "");
  if (!m) return null;
  let host = m[1];
  if (["", "0.0.0.0", "::", "[::]"].includes(host)) host = location.hostname;
  return location.protocol + "//" + host + ":" + m[2] + "/ui/";
}

async function clusterPage() {
  const c = await api("cluster");
  const rows = c.members.map(m => {
    const s = m.stats || {};
    const disk = s.disk_size ? bytes(s.disk_size - s.disk_free) + " used, " + bytes(s.disk_free) + " free" : "-";
    return h("tr", { "data-member": m.name },
      h("td", {}, m.name), h("td", { class: "state-" + m.state }, m.state),
      h("td", {}, consoleURL(m.http) ? h("a", { class: "console-link", href: consoleURL(m.http), title: "this member's console" }, m.http) : m.http),
      h("td", {}, m.gossip), h("td", {}, m.version),
      h("td", {}, s.started ? dur((Date.now() - new Date(s.started)) / 1000) : "-"),
      h("td", {}, disk), h("td", { class: "num" }, s.blocks ?? "-"), h("td", { class: "num" }, bytes(s.block_bytes)),
      h("td", { class: "num" }, pct(m.ring_share)), h("td", { class: "num" }, s.running_tasks ?? "-"),
      h("td", { class: m.unhealthy ? "error" : "" }, m.unhealthy || (m.stats ? "ok" : "did not answer")));
  });
  show(
    h("h2", {}, "Members"),
    table(["name", "state", "http", "gossip", "version", "uptime", "disk", "blocks", "bytes", "ring", "tasks", "health"], rows, "members"),
    h("p", {}, "Under-replicated block copies: ", h("strong", { id: "under" }, c.under_replicated),
      " · missing blocks: ", h("strong", { id: "missing", class: c.missing ? "error" : "" }, c.missing)),
    h("h2", {}, "Recent membership events (seen by " + c.node + ")"),
    table(["when", "event"], c.events.map(e => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.what))), "events"));
}

// ---- Files ------------------------------------------------------------

async function filesPage(params) {
  const path = params.get("path") || "/";
  const file = params.get("file");
  const from = params.get("from") || "";
  if (file) return filePage(file);
  const d = await api("files?path=" + encodeURIComponent(path) + (from ? "&from=" + encodeURIComponent(from) : ""));
  const up = path === "/" ? null : path.replace(/\/[^/]*$/, "") || "/";
  const rows = d.entries.map(e => h("tr", {},
    h("td", {}, h("a", { href: e.dir ? "#/files?path=" + encodeURIComponent(e.path) : "#/files?file=" + encodeURIComponent(e.path) }, e.name + (e.dir ? "/" : ""))),
    h("td", { class: "num" }, e.dir ? "" : bytes(e.size)),
    h("td", { class: "num" }, e.dir ? "directory" : e.blocks + " blocks"),
    h("td", { class: "num" }, e.dir ? "" : e.replication),
    h("td", {}, e.dir ? "" : when(e.mtime_unix_ns))));
  const here = "#/files?path=" + encodeURIComponent(path);
  show(h("h2", {}, "Files in " + d.path),
    up ? h("p", {}, h("a", { href: "#/files?path=" + encodeURIComponent(up) }, "↑ " + up)) : null,
    from ? h("p", {}, h("a", { href: here, id: "first-page" }, "« first page")) : null,
    table(["name", "size", "contents", "replication", "modified"], rows, "files"),
    d.next ? h("p", {}, h("a", { href: here + "&from=" + encodeURIComponent(d.next), id: "more" }, "more…")) : null);
}

async function filePage(path) {
  const f = await api("file?path=" + encodeURIComponent(path));
  const rows = f.blocks.map((b, i) => h("tr", {},
    h("td", { class: "num" }, i), h("td", {}, h("code", {}, b.id.slice(0, 16) + "…")), h("td", { class: "num" }, bytes(b.size)),
    h("td", {}, b.owners.join(", ")), h("td", {}, b.holders.join(", ")), h("td", { class: "health-" + b.health }, b.health)));
  show(h("h2", {}, f.path),
    h("p", {}, bytes(f.size) + ", replication " + f.replication + ", modified " + when(f.mtime_unix_ns)),
    table(["#", "block", "size", "owners (ring)", "holders", "health"], rows, "blocks"),
    f.cut ? h("p", { class: "muted" }, "Only the first 1,000 blocks are shown.") : null);
}

// ---- Jobs -------------------------------------------------------------

function progress(st) {
  const m = st.maps ? st.maps_done / st.maps : 1;
  const r = st.reducers ? st.reduces_done / st.reducers : m;
  return [h("span", {}, "map ", bar(m), " "), h("span", {}, "reduce ", bar(r))];
}

async function jobsPage(params) {
  const after = params.get("after") || "";
  const d = await api("jobs" + (after ? "?after=" + encodeURIComponent(after) : ""));
  const rows = d.jobs.map(st => h("tr", { "data-job": st.id },
    h("td", {}, h("a", { href: "#/job/" + st.id }, st.id)), h("td", {}, st.name),
    h("td", { class: "state-" + st.state }, st.state), h("td", {}, progress(st)),
    h("td", {}, when(st.submitted_at_unix_ns)), h("td", {}, st.output),
    h("td", { class: "error" }, st.error || "")));
  show(h("h2", {}, "Jobs (" + d.total + ")"),
    after ? h("p", {}, h("a", { href: "#/jobs", id: "newest" }, "« newest jobs")) : null,
    table(["job", "name", "state", "progress", "submitted", "output", "error"], rows, "jobs"),
    d.next ? h("p", {}, h("a", { href: "#/jobs?after=" + encodeURIComponent(d.next), id: "older" }, "older jobs…")) : null);
}

let killArmed = false;

async function jobPage(id) {
  const j = await api("jobs/" + encodeURIComponent(id));
  const st = j.status;
  const counters = Object.entries(st.counters || {}).sort().map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, v)));
  const phases = Object.entries(j.phases).sort().map(([k, p]) => h("tr", { "data-phase": k },
    h("td", {}, k), h("td", { class: "num" }, p.attempts), h("td", { class: "num" }, p.failed),
    h("td", { class: "num" }, dur(p.median_s)), h("td", { class: "num" }, dur(p.max_s)),
    h("td", { class: "num" }, p.read_input ? p.data_local + " of " + p.read_input : "-"),
    h("td", { class: "num" }, bytes(p.median_in_bytes)), h("td", { class: "num" }, bytes(p.max_in_bytes)),
    h("td", { class: "num" }, bytes(p.median_out_bytes)), h("td", { class: "num" }, bytes(p.max_out_bytes))));
  const attempts = j.attempts.map(a => h("tr", { "data-task": a.task, "data-attempt": a.attempt },
    h("td", {}, a.task), h("td", { class: "num" }, a.attempt), h("td", {}, a.node),
    h("td", {}, when(a.start)),
    h("td", { class: "num" }, a.end ? dur((new Date(a.end) - new Date(a.start)) / 1000) : "running"),
    h("td", { class: "state-" + a.result }, a.result),
    h("td", { class: "local" }, a.io && a.io.locality ? (a.io.locality === "local" ? "yes" : "no") : "-"),
    h("td", { class: "num in" }, a.io ? bytes(a.io.in_bytes) : "-"),
    h("td", { class: "num out" }, a.io ? bytes(a.io.out_bytes) : "-"),
    h("td", {}, h("a", { class: "log", href: "#/log/" + id + "/" + a.task + "/" + a.attempt }, "log (" + bytes(a.size) + ")"))));
  const kill = st.state === "running" ? (killArmed
    ? h("span", { id: "kill-confirm" }, "Kill job " + id + " on every node? ",
        h("button", { class: "danger", id: "kill-yes", onclick: () => doKill(id) }, "Kill"), " ",
        h("button", { id: "kill-no", onclick: () => { killArmed = false; render(); } }, "Cancel"))
    : h("button", { id: "kill", onclick: () => { killArmed = true; render(); } }, "Kill…")) : null;
  show(
    h("h2", {}, "Job " + st.id + " (" + st.name + ")"),
    h("p", {}, "State: ", h("strong", { id: "job-state", class: "state-" + st.state }, st.state), " ", progress(st), " ", kill),
    st.error ? h("p", { class: "error", id: "job-error" }, st.error) : null,
    h("p", {}, "Output ", h("code", {}, st.output), " · submitted " + when(st.submitted_at_unix_ns) + " by " + st.submitted_by +
      (st.ended_at_unix_ns ? " · ended " + when(st.ended_at_unix_ns) : "")),
    h("h2", {}, "Phases"),
    table(["kind", "ended attempts", "failed", "median time", "max time", "data-local", "median in", "max in", "median out", "max out"], phases, "phases"),
    h("h2", {}, "Timeline of attempts by node"),
    timeline(j.attempts),
    h("h2", {}, "Task attempts"),
    table(["task", "attempt", "node", "start", "duration", "result", "data-local", "bytes in", "bytes out", "log"], attempts, "attempts"),
    j.missing && j.missing.length ? h("p", { class: "error" }, "Did not answer (attempts not shown): " + j.missing.join(", ")) : null,
    h("h2", {}, "Counters"),
    table(["counter", "value"], counters, "counters"));
}

function timeline(attempts) {
  if (!attempts.length) return h("p", { class: "muted" }, "No attempts yet.");
  const t0 = Math.min(...attempts.map(a => new Date(a.start)));
  const t1 = Math.max(...attempts.map(a => a.end ? new Date(a.end) : Date.now()));
  const span = Math.max(1, t1 - t0);
  const nodes = [...new Set(attempts.map(a => a.node))].sort();
  const rows = [];
  for (const n of nodes) {
    // Attempts that overlap in time go on separate lanes of the node.
    const lanes = [];
    for (const a of attempts.filter(a => a.node === n).sort((x, y) => new Date(x.start) - new Date(y.start))) {
      const s = new Date(a.start) - t0, e = (a.end ? new Date(a.end) : Date.now()) - t0;
      let lane = lanes.findIndex(end => end <= s);
      if (lane < 0) { lane = lanes.length; lanes.push(0); }
      lanes[lane] = e;
      a._lane = lane; a._s = s; a._e = e;
    }
    lanes.forEach((_, i) => rows.push(h("div", { class: "row" },
      h("span", { class: "label" }, i === 0 ? n : ""),
      h("div", { class: "lane" }, attempts.filter(a => a.node === n && a._lane === i).map(a =>
        h("div", { class: "att " + a.result, title: a.task + " #" + a.attempt + " " + a.result + " " + dur((a._e - a._s) / 1000),
          style: { left: (100 * a._s / span) + "%", width: (100 * (a._e - a._s) / span) + "%" } }))))));
  }
  return h("div", { class: "timeline", id: "timeline" }, rows,
    h("div", { class: "muted" }, "0 to " + dur(span / 1000) + " after the first attempt started"));
}

async function doKill(id) {
  killArmed = false;
  await api("jobs/" + encodeURIComponent(id) + "/kill", { method: "POST", headers: { "X-Shoal-CSRF": csrf } });
  render();
}

async function logPage(id, task, attempt) {
  const text = await api("jobs/" + encodeURIComponent(id) + "/logs/" + encodeURIComponent(task) + "?attempt=" + encodeURIComponent(attempt));
  show(h("h2", {}, "Log of " + task + " attempt " + attempt + " of ", h("a", { href: "#/job/" + id }, id)),
    h("pre", { class: "log", id: "log" }, text));
}

// ---- Routing ----------------------------------------------------------

async function render() {
  const hash = location.hash.slice(1) || "/cluster";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  for (const n of ["cluster", "files", "jobs"]) {
    document.getElementById("nav-" + n).className = (parts[0] === n || (n === "jobs" && (parts[0] === "job" || parts[0] === "log"))) ? "active" : "";
  }
  try {
    switch (parts[0]) {
      case "files": await filesPage(params); break;
      case "jobs": await jobsPage(params); break;
      case "job": await jobPage(parts[1]); break;
      case "log": await logPage(parts[1], parts[2], parts[3]); return; // a log is read once
      default: await clusterPage();
    }
  } catch (e) {
    if (hash !== route) return;
    show(h("p", { class: "error", id: "error" }, e.message));
  }
}

function poll() {
  clearTimeout(timer);
  const mine = location.hash;
  render().finally(() => {
    if (location.hash === mine && !mine.startsWith("#/log/")) timer = setTimeout(poll, 1000);
  });
}

window.addEventListener("hashchange", () => { killArmed = false; route = location.hash.slice(1); poll(); });
window.addEventListener("DOMContentLoaded", async () => {
  const s = await api("session");
  csrf = s.csrf;
  document.getElementById("node").textContent = "agent " + s.node + " · " + s.version;
  route = location.hash.slice(1) || "/cluster";
  poll();
});
