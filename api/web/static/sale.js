// The sale page: pick an event, sign in, queue if the event has one, choose seats, pay,
// watch the booking decided live, list and cancel one's bookings. Everything goes through
// the JSON API; live parts come from its Server-Sent Events streams.

import { api, ApiError, currentAccount, randomId } from "./api.js";
import { explain, outcomeText, say, warn } from "./messages.js";
import { SeatMap } from "./seatmap.js";

const $ = (id) => document.getElementById(id);
const info = $("event-info");
const eventId = Number(info.dataset.eventId) || null;
const FINAL = new Set(["CONFIRMED", "REJECTED", "EXPIRED", "CANCELLED"]);
const CANCEL_POLL_MS = 500;
const CANCEL_POLLS = 40;

const state = {
  me: null,
  event: null,
  version: -1, // of the seat map drawn
  etag: null,
  refreshing: null,
  again: false,
  admission: null, // the queue's admission token, once admitted
  queueStream: null,
  booking: null,
  bookingStream: null,
  countdown: null,
  ready: false,
};

function failed(error) {
  if (!(error instanceof ApiError)) console.error(error);
  warn(explain(error));
}

// ------------------------------------------------------------------ account

async function loadMe() {
  state.me = await currentAccount();
  renderAccount();
}

function renderAccount() {
  const signedIn = state.me !== null;
  $("account").hidden = signedIn;
  $("account-bar").hidden = !signedIn;
  $("who").textContent = signedIn ? state.me.email : "";
  $("mine").hidden = !signedIn;
  $("queue").hidden = !(signedIn && state.event?.queue && !state.admission);
  renderBookable();
  if (signedIn) loadMine().catch(failed);
}

async function signIn(register) {
  const form = $("sign-in-form");
  if (!form.reportValidity()) return;
  const credentials = { email: $("email").value.trim(), password: $("password").value };
  warn("");
  try {
    if (register) await api("POST", "/api/auth/register", credentials);
    await api("POST", "/api/auth/session", credentials);
    $("password").value = "";
    await loadMe();
    say(register ? "Account created: you are signed in." : "Signed in.");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) warn("Wrong email or password.");
    else if (error instanceof ApiError && error.status === 409) warn("That email already has an account: sign in.");
    else failed(error);
  }
}

async function signOut() {
  try {
    await api("DELETE", "/api/auth/session");
  } catch (error) {
    failed(error);
    return;
  }
  state.me = null;
  state.admission = null;
  state.queueStream?.close();
  say("Signed out.");
  renderAccount();
}

// ------------------------------------------------------------------ event and seats

function counts(free, held, sold) {
  $("count-free").textContent = free;
  $("count-held").textContent = held;
  $("count-sold").textContent = sold;
  const soldOut = free === 0;
  $("seats").classList.toggle("sold-out", soldOut);
  if (soldOut && !$("booking").dataset.active) {
    say(held > 0 ? "All seats are taken for now: held seats come back if they are not paid." : "Sold out: every seat is sold.");
  }
}

async function loadEvent() {
  const event = await api("GET", `/api/events/${eventId}`);
  state.event = event;
  $("event-name").textContent = event.name;
  const rules = [`Up to ${event.per_user_limit} seats per buyer.`];
  if (event.hold_seconds > 0) rules.push(`Seats are held for ${event.hold_seconds} s while you pay.`);
  if (event.queue) rules.push("Sold through a waiting room.");
  $("event-rules").textContent = rules.join(" ");
  const sections = $("best-section");
  sections.replaceChildren(
    ...event.sections.map((s) => new Option(s.name === "GA" ? "General admission" : s.name, s.name)),
  );
  seatMap.maxChosen = event.per_user_limit;
  $("best-count").max = String(event.per_user_limit);
  counts(event.available, event.held, event.sold);
  $("seats").hidden = false;
}

/** Re-reads the seat map (304 while it has not moved); one read at a time. */
async function refreshSeats() {
  if (state.refreshing) {
    state.again = true;
    return state.refreshing;
  }
  state.refreshing = (async () => {
    do {
      state.again = false;
      const headers = state.etag ? { "If-None-Match": state.etag } : {};
      const response = await fetch(`/api/events/${eventId}/seats`, { headers, cache: "no-store" });
      if (response.status === 304) continue;
      if (!response.ok) throw await ApiError.from(response);
      state.etag = response.headers.get("ETag");
      const map = await response.json();
      state.version = map.version;
      seatMap.render(map);
      counts(map.free, map.held, map.sold);
      markReady();
    } while (state.again);
  })();
  try {
    await state.refreshing;
  } finally {
    state.refreshing = null;
  }
}

function markReady() {
  if (state.ready) return;
  state.ready = true;
  performance.mark("tickets-ready"); // time to interactive, read by the benchmark
  document.documentElement.dataset.ready = "true";
}

function watchAvailability() {
  const stream = new EventSource(`/api/events/${eventId}/stream`);
  stream.addEventListener("availability", (message) => {
    const availability = JSON.parse(message.data);
    counts(availability.free, availability.held, availability.sold);
    if (availability.version !== state.version) refreshSeats().catch(failed);
  });
}

function chosenChanged(chosen, lost) {
  $("chosen").textContent = chosen.length ? `Chosen: ${chosen.join(", ")}` : "No seat chosen.";
  if (lost.length) warn(`Seat taken: ${lost.join(", ")} went to someone else before you booked.`);
  renderBookable();
}

function renderBookable() {
  const signedIn = state.me !== null;
  const admitted = !state.event?.queue || state.admission !== null;
  const open = signedIn && admitted;
  $("book-chosen").disabled = !open || seatMap.chosen.size === 0;
  $("book-best").disabled = !open;
  $("seat-help").textContent = !signedIn
    ? "Sign in to book. Seats are shown live."
    : !admitted
      ? "Join the queue: you can book once you are admitted."
      : "Click seats, or Tab to the map and use the arrow keys and Space.";
}

// ------------------------------------------------------------------ queue

async function joinQueue() {
  warn("");
  try {
    const entry = await api("POST", `/api/events/${eventId}/queue`, { user_id: state.me.user_id });
    showQueue(entry);
    if (entry.status === "WAITING") watchQueue(entry.queue_id);
  } catch (error) {
    failed(error);
  }
}

function watchQueue(queueId) {
  state.queueStream?.close();
  const stream = new EventSource(`/api/events/${eventId}/queue/${queueId}/events`);
  state.queueStream = stream;
  stream.addEventListener("status", (message) => {
    const entry = JSON.parse(message.data);
    showQueue(entry);
    if (entry.status !== "WAITING") stream.close();
  });
  stream.addEventListener("error", (message) => {
    if (message.data) warn(`The waiting room is unavailable: ${message.data}`);
  });
}

function showQueue(entry) {
  $("join-queue").hidden = entry.status === "WAITING";
  const status = $("queue-status");
  if (entry.status === "WAITING") {
    const eta = entry.eta_s == null ? "" : `, about ${Math.max(1, Math.ceil(entry.eta_s))} s to go`;
    status.textContent =
      entry.position == null ? "In the queue: waiting for the sale to open." : `In the queue: number ${entry.position}${eta}.`;
  } else if (entry.status === "ADMITTED") {
    state.admission = entry.admission_token;
    status.textContent = "Admitted.";
    say("You are in: choose your seats and book within 10 minutes.");
    $("queue").hidden = true;
  } else if (entry.status === "SOLD_OUT") {
    status.textContent = "Sold out while you waited.";
    warn("Sold out: the event sold out while you waited.");
  } else {
    status.textContent = "Your place in the queue expired: join again.";
    $("join-queue").hidden = false;
  }
  renderBookable();
}

// ------------------------------------------------------------------ booking

async function book(choice) {
  warn("");
  const body = { event_id: eventId, user_id: state.me.user_id, ...choice };
  if (state.admission) body.admission_token = state.admission;
  let accepted;
  try {
    accepted = await api("POST", "/api/bookings", body, { idempotencyKey: randomId() });
  } catch (error) {
    failed(error);
    return;
  }
  seatMap.clear();
  say("Booking requested: waiting for the decision.");
  showBooking({ booking_id: accepted.booking_id, status: "PENDING", seats: [] });
  watchBooking(accepted.booking_id);
}

function watchBooking(bookingId) {
  state.bookingStream?.close();
  const stream = new EventSource(`/api/bookings/${bookingId}/events`);
  state.bookingStream = stream;
  stream.addEventListener("status", (message) => {
    const booking = JSON.parse(message.data);
    showBooking(booking);
    if (FINAL.has(booking.status)) {
      stream.close(); // the server ends it; EventSource would reconnect
      loadMine().catch(failed);
    }
  });
}

function showBooking(booking) {
  state.booking = booking;
  const panel = $("booking");
  panel.hidden = false;
  panel.dataset.active = "true";
  $("booking-status").textContent = booking.status;
  $("booking-status").dataset.status = booking.status;
  $("booking-ref").textContent = booking.booking_id;
  const cost = booking.price_cents == null ? "" : ` (${(booking.price_cents / 100).toFixed(2)})`;
  $("booking-seats").textContent = booking.seats.length ? `Seats: ${booking.seats.join(", ")}${cost}` : "";
  $("pay").hidden = booking.status !== "HELD";
  $("cancel").hidden = !["HELD", "CONFIRMED"].includes(booking.status);
  clearInterval(state.countdown);
  $("hold-countdown").textContent = "";
  if (booking.status === "HELD" && booking.hold_expires_at) {
    const deadline = Date.parse(booking.hold_expires_at);
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      $("hold-countdown").textContent = left
        ? `Held for you: pay within ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}.`
        : "The hold has run out.";
    };
    tick();
    state.countdown = setInterval(tick, 1000);
    say("Seats held: pay before the hold runs out.");
  } else if (booking.status === "CONFIRMED") {
    say(`Confirmed: ${booking.seats.join(", ")} are yours.`);
    warn("");
  } else if (FINAL.has(booking.status)) {
    const text = outcomeText(booking);
    if (booking.status === "CANCELLED") say(text);
    else warn(text);
  }
}

async function pay() {
  const booking = state.booking;
  warn("");
  try {
    await api("POST", `/api/bookings/${booking.booking_id}/payment`, { payment_ref: `dev-${randomId()}` }, {
      idempotencyKey: randomId(),
    });
    $("pay").hidden = true;
    say("Payment sent: waiting for the confirmation.");
  } catch (error) {
    failed(error);
  }
}

async function cancel(bookingId) {
  warn("");
  try {
    await api("POST", `/api/bookings/${bookingId}/cancel`);
  } catch (error) {
    failed(error);
    return;
  }
  say("Cancelling...");
  // The cancellation is decided by the worker; its stream has ended, so ask until it is.
  try {
    let booking = null;
    for (let i = 0; i < CANCEL_POLLS && booking?.status !== "CANCELLED"; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, CANCEL_POLL_MS));
      booking = await api("GET", `/api/bookings/${bookingId}`);
    }
    if (booking.status !== "CANCELLED") {
      say("");
      warn("The cancellation is taking longer than usual: your bookings below will show it.");
    } else if (state.booking?.booking_id === bookingId) showBooking(booking);
    else say(outcomeText(booking));
    await loadMine();
  } catch (error) {
    say("");
    failed(error); // never left at "Cancelling..." when the page cannot ask any more
  }
}

// ------------------------------------------------------------------ my bookings

async function loadMine() {
  if (!state.me) return;
  const page = await api("GET", "/api/me/bookings?limit=20");
  const rows = page.bookings.map((booking) => {
    const row = document.createElement("tr");
    for (const text of [`#${booking.event_id}`, booking.seats.join(", ") || "-", booking.status]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const action = document.createElement("td");
    if (["HELD", "CONFIRMED"].includes(booking.status)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary small";
      button.textContent = "Cancel";
      button.setAttribute("aria-label", `Cancel booking of ${booking.seats.join(", ")}`);
      button.addEventListener("click", () => cancel(booking.booking_id));
      action.append(button);
    }
    row.append(action);
    return row;
  });
  $("mine-rows").replaceChildren(...rows);
  $("mine-empty").hidden = rows.length > 0;
}

// ------------------------------------------------------------------ start

const seatMap = new SeatMap($("seat-map"), { onChange: chosenChanged });

$("sign-in-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn(false);
});
$("register").addEventListener("click", () => signIn(true));
$("sign-out").addEventListener("click", signOut);
$("join-queue").addEventListener("click", joinQueue);
$("book-chosen").addEventListener("click", () => book({ seats: [...seatMap.chosen] }));
$("best-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const quantity = Number($("best-count").value);
  book({ section: $("best-section").value, quantity, together: quantity > 1 });
});
$("pay").addEventListener("click", pay);
$("cancel").addEventListener("click", () => cancel(state.booking.booking_id));

async function start() {
  if (eventId === null) {
    await loadMe();
    return;
  }
  await loadEvent();
  await Promise.all([loadMe(), refreshSeats()]);
  watchAvailability();
}

start().catch(failed);
