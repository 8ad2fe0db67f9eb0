// The operator console: an admin signs in with the same session cookie as the sale page;
// the overview is read every OVERVIEW_MS, Kafka every KAFKA_MS, the charts every CHARTS_MS.
// Who may see anything is decided by the server (/api/console is admin only): a 403 here
// is shown as "needs the admin role", never worked around.

import { api, ApiError, currentAccount } from "./api.js";
import { drawCharts, format } from "./charts.js";
import { el } from "./dom.js";
import { explain, say, warn } from "./messages.js";

const $ = (id) => document.getElementById(id);
const OVERVIEW_MS = 1500;
const KAFKA_MS = 5000;
const CHARTS_MS = 15000;

const state = {
  me: null,
  running: false,
  timers: [],
  verdicts: new Map(), // event id -> the latest verdict, for the search result
  topicsListed: false,
  ready: false,
};

function ready() {
  if (state.ready) return;
  state.ready = true;
  performance.mark("tickets-ready"); // time to interactive, read by the benchmark
  document.documentElement.dataset.ready = "true";
}

const denied = (error) => error instanceof ApiError && (error.status === 401 || error.status === 403);

// ------------------------------------------------------------------ signing in

async function loadMe() {
  state.me = await currentAccount();
  $("who").textContent = state.me ? `${state.me.email} (${state.me.role})` : "";
  $("account-bar").hidden = !state.me;
  if (!state.me) {
    showSignIn();
    return;
  }
  await enter();
}

function showSignIn() {
  stop();
  $("console").hidden = true;
  $("account").hidden = false;
  ready();
}

/** Opens the console if the server lets this session read it. */
async function enter() {
  $("account").hidden = true;
  try {
    await refreshOverview();
  } catch (error) {
    if (denied(error)) {
      refuse(error);
      return;
    }
    throw error;
  } finally {
    ready();
  }
  $("console").hidden = false;
  start();
}

function refuse(error) {
  stop();
  $("console").hidden = true;
  if (error.status === 401) {
    showSignIn();
    warn("Your session has ended: sign in again.");
    return;
  }
  const email = state.me?.email || "EMAIL";
  warn(
    `This console needs the admin role, and ${email} does not have it: no data is shown. ` +
      `An operator grants it with "python -m scripts.accounts grant-admin ${email}"; then sign out and in again.`,
  );
}

async function signIn(event) {
  event.preventDefault();
  const form = $("sign-in-form");
  if (!form.reportValidity()) return;
  warn("");
  try {
    await api("POST", "/api/auth/session", { email: $("email").value.trim(), password: $("password").value });
  } catch (error) {
    warn(error instanceof ApiError && error.status === 401 ? "Wrong email or password." : explain(error));
    return;
  }
  $("password").value = "";
  say("Signed in.");
  await loadMe();
}

async function signOut() {
  try {
    await api("DELETE", "/api/auth/session");
  } catch (error) {
    warn(explain(error));
    return;
  }
  state.me = null;
  $("account-bar").hidden = true;
  warn("");
  say("Signed out.");
  showSignIn();
}

// ------------------------------------------------------------------ polling

/** Runs `read` now and then every `ms`, never two at once; paused while the tab is hidden. */
function every(ms, read) {
  const tick = async () => {
    if (!state.running) return;
    if (!document.hidden) {
      try {
        await read();
      } catch (error) {
        if (denied(error)) {
          refuse(error);
          return;
        }
        console.error(error);
      }
    }
    if (state.running) state.timers.push(setTimeout(tick, ms));
  };
  state.timers.push(setTimeout(tick, 0));
}

function start() {
  if (state.running) return;
  state.running = true;
  state.timers.push(setTimeout(() => every(OVERVIEW_MS, refreshOverview), OVERVIEW_MS));
  every(KAFKA_MS, refreshKafka);
  every(CHARTS_MS, refreshCharts);
}

function stop() {
  state.running = false;
  for (const timer of state.timers) clearTimeout(timer);
  state.timers = [];
}

// ------------------------------------------------------------------ overview

const num = (value) => el("td", { class: "num" }, value === null || value === undefined ? "–" : String(value));

function verdictCell(verdict) {
  const text = verdict || "unknown";
  return el("td", {}, el("span", { class: "verdict", "data-verdict": text }, text));
}

async function refreshOverview() {
  const view = await api("GET", "/api/console/overview?limit=20&window_s=10");
  const s = view.service;
  $("updated").textContent = new Date(view.at).toLocaleTimeString();
  $("window").textContent = String(s.window_s);
  $("requests-per-s").textContent = s.requests_per_s === null ? "measuring…" : format(s.requests_per_s);
  $("decisions-per-s").textContent = format(s.decisions_per_s);
  $("latency-p50").textContent = format(s.decision_latency_p50_s, "s");
  $("latency-p99").textContent = format(s.decision_latency_p99_s, "s");
  $("worker-lag").textContent = s.worker_lag === null ? "unknown" : String(s.worker_lag);
  $("unavailable").hidden = s.unavailable.length === 0;
  $("unavailable").textContent = s.unavailable.length
    ? `Could not read ${s.unavailable.join(" and ")} just now: those figures are missing or stale.`
    : "";
  $("events-rows").replaceChildren(
    ...view.events.map((e) =>
      el(
        "tr",
        { "data-event": e.id },
        num(e.id),
        el("td", {}, el("a", { href: `/?event=${e.id}` }, e.name)),
        num(e.capacity),
        num(e.sold),
        num(e.held),
        num(e.free),
        verdictCell(e.verdict),
      ),
    ),
  );
  $("events-empty").hidden = view.events.length > 0;
  for (const e of view.events) state.verdicts.set(e.id, e.verdict);
  for (const span of document.querySelectorAll("[data-verdict-of]")) {
    const verdict = state.verdicts.get(Number(span.dataset.verdictOf)) || "unknown";
    span.textContent = verdict;
    span.dataset.verdict = verdict;
  }
}

// ------------------------------------------------------------------ Kafka

const list = (values) => (values && values.length ? values.join(", ") : "–");

async function refreshKafka() {
  const [{ topics }, group] = await Promise.all([
    api("GET", "/api/console/kafka/topics"),
    api("GET", "/api/console/kafka/group"),
  ]);
  $("topics-rows").replaceChildren(
    ...topics.flatMap((t) =>
      t.partitions.map((p) =>
        el(
          "tr",
          {},
          el("td", {}, t.name),
          num(p.partition),
          num(p.earliest),
          num(p.latest),
          num(p.messages),
          num(p.leader),
          el("td", {}, list(p.replicas)),
          el("td", {}, list(p.isr)),
        ),
      ),
    ),
  );
  if (!state.topicsListed) {
    state.topicsListed = true;
    $("topic").replaceChildren(...topics.map((t) => el("option", { value: t.name }, t.name)));
  }
  $("group-summary").textContent =
    `${group.group} on ${group.topic}: ${group.state}, ${group.members.length} member(s), lag ${group.lag}.`;
  $("members-rows").replaceChildren(
    ...(group.members.length
      ? group.members.map((m) => el("tr", {}, el("td", {}, m.client_id), el("td", {}, m.host), el("td", {}, list(m.partitions))))
      : [el("tr", {}, el("td", { colspan: 3 }, "No worker is in the group now."))]),
  );
  $("lag-rows").replaceChildren(
    ...group.partitions.map((p) =>
      el("tr", {}, num(p.partition), num(p.committed ?? "none"), num(p.latest), num(p.lag)),
    ),
  );
}

// ------------------------------------------------------------------ charts

async function refreshCharts() {
  let charts;
  try {
    charts = await api("GET", "/api/console/charts?minutes=15");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 503) throw error;
    $("charts-note").textContent = `Prometheus is not answering: ${error.detail}`;
    return;
  }
  if (!charts.configured) {
    $("charts-note").textContent =
      "Charts are not configured: start with scripts/stack up --monitoring (it runs Prometheus and sets TICKETS_PROMETHEUS_URL).";
    $("charts").replaceChildren();
    return;
  }
  $("charts-note").textContent = `From Prometheus, one point every ${charts.step_s} s.`;
  drawCharts($("charts"), charts);
}

// ------------------------------------------------------------------ messages and search

function decoded(message) {
  if (message.value === null) {
    return el(
      "div",
      {},
      el("p", { class: "poison" }, `Does not decode: ${message.error || "unknown error"}`),
      message.raw_preview ? el("code", { class: "raw" }, message.raw_preview) : null,
    );
  }
  const fields = Object.entries(message.value).filter(([, v]) => v !== null && v !== undefined);
  return el(
    "ul",
    { class: "fields" },
    fields.map(([k, v]) => {
      const text = shown(k, v);
      const cut = text.length > LONG ? `${text.slice(0, LONG)}…` : text; // admission tokens
      return el("li", { title: cut === text ? null : text }, el("span", { class: "field" }, `${k}:`), " ", cut);
    }),
  );
}

const LONG = 60;

function shown(key, value) {
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  if (key.endsWith("_at_ms") && typeof value === "number") {
    return `${value} (${new Date(value).toLocaleTimeString()})`;
  }
  return String(value);
}

function messagesTable(caption, messages) {
  if (!messages.length) return el("p", { class: "hint" }, `${caption}: none.`);
  return el(
    "div",
    { class: "scroll", tabindex: 0, role: "region", "aria-label": caption },
    el(
      "table",
      { class: "data messages" },
      el("caption", {}, caption),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ["Partition", "Offset", "Appended", "Kind", "Key", "Decoded", "Dead-letter reason"].map((h) =>
            el("th", { scope: "col" }, h),
          ),
        ),
      ),
      el(
        "tbody",
        {},
        messages.map((m) =>
          el(
            "tr",
            { "data-kind": m.kind },
            num(m.partition),
            num(m.offset),
            el("td", {}, new Date(m.timestamp_ms).toLocaleTimeString()),
            el("td", {}, m.kind),
            el("td", {}, m.key ?? "–"),
            el("td", {}, decoded(m)),
            el("td", { class: "reason" }, m.headers.reason ? `${m.headers.reason}${m.headers.source ? ` (from ${m.headers.source})` : ""}` : "–"),
          ),
        ),
      ),
    ),
  );
}

async function showMessages(event) {
  event.preventDefault();
  const topic = $("topic").value;
  const limit = Number($("limit").value) || 20;
  const out = $("messages-out");
  try {
    const tail = await api("GET", `/api/console/kafka/topics/${encodeURIComponent(topic)}/messages?limit=${limit}`);
    out.replaceChildren(messagesTable(`The last ${tail.messages.length} of ${tail.topic.messages} messages on ${topic}, oldest first`, tail.messages));
  } catch (error) {
    if (denied(error)) return refuse(error);
    out.replaceChildren(el("p", { class: "warning" }, explain(error)));
  }
}

function ledgerLine(ledger) {
  if (ledger === null) {
    return el("p", {}, "Not in the ledger: not decided yet (still in Kafka), or never accepted.");
  }
  const verdict = state.verdicts.get(ledger.event_id) || "unknown";
  return el(
    "div",
    { class: "ledger" },
    el(
      "p",
      {},
      "Ledger: event ",
      el("a", { href: `/?event=${ledger.event_id}` }, `#${ledger.event_id}`),
      ", ",
      el("strong", { class: "status", "data-status": ledger.status }, ledger.status),
      `, quantity ${ledger.quantity}`,
      ledger.seats.length ? `, seats ${ledger.seats.join(", ")}` : "",
      ".",
    ),
    el(
      "p",
      {},
      `Event #${ledger.event_id}'s audit: `,
      el("span", { class: "verdict", "data-verdict": verdict, "data-verdict-of": ledger.event_id }, verdict),
    ),
  );
}

async function search(event) {
  event.preventDefault();
  const id = $("booking-id").value.trim();
  const out = $("search-out");
  out.replaceChildren(el("p", { class: "hint" }, `Searching for ${id}…`));
  let found;
  try {
    found = await api("GET", `/api/console/kafka/bookings/${encodeURIComponent(id)}`);
  } catch (error) {
    if (denied(error)) return refuse(error);
    out.replaceChildren(el("p", { class: "warning" }, explain(error)));
    return;
  }
  const r = found.requests;
  out.replaceChildren(
    el("h3", {}, `Booking ${found.booking_id}`),
    ledgerLine(found.ledger),
    messagesTable(
      `Its messages on ${r.topic} (partition ${r.partitions.join(", ")}; ${r.scanned} messages read)`,
      r.messages,
    ),
    messagesTable(`Dead letters naming it (the last ${found.dead_letters_searched} per partition read)`, found.dead_letters),
  );
}

// ------------------------------------------------------------------ wiring

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("messages-form").addEventListener("submit", showMessages);
$("search-form").addEventListener("submit", search);
$("kafka-refresh").addEventListener("click", () => refreshKafka().catch((error) => warn(explain(error))));

loadMe().catch((error) => {
  ready();
  warn(explain(error));
});
