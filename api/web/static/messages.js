// What the user is told: API errors and booking outcomes in plain words, and the page's two
// message areas (#message for news, #alert for what went wrong; both pages have them).

import { ApiError } from "./api.js";

const REASONS = {
  SOLD_OUT: "Sold out: the last seats went before your request was decided.",
  SEAT_TAKEN: "Seat taken: someone else got one of those seats first. Pick other seats.",
  NO_ADJACENT_SEATS:
    "No row of that section has that many free seats side by side. Try fewer seats or another section.",
  LIMIT_EXCEEDED: "That would take you over this event's limit of seats per buyer.",
  NOT_ADMITTED:
    "You have not been admitted from the waiting room, or your admission ran out. Join the queue and wait for your turn.",
  INVALID: "The booking request was not valid.",
};

/** The sentence for a booking that did not end CONFIRMED. */
export function outcomeText(booking) {
  switch (booking.status) {
    case "EXPIRED":
      return "Expired: the hold ran out before payment, and the seats went back on sale.";
    case "CANCELLED":
      return "Cancelled: the seats went back on sale.";
    case "REJECTED":
      return REASONS[booking.reason] || `Rejected (${booking.reason}).`;
    default:
      return "";
  }
}

/** The sentence for a request the API refused. */
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return "The network failed: check the connection and try again.";
  }
  if (error.reason && REASONS[error.reason]) {
    return error.reason === "SOLD_OUT" ? "Sold out: there are no seats left for this event." : REASONS[error.reason];
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? `${error.retryAfter} s` : "a few seconds";
    return `Too many requests: wait ${wait} and try again.`;
  }
  if (error.status === 401) return "Please sign in first.";
  if (error.status === 403 && error.detail.includes("CSRF")) {
    return "This page's security token is missing or stale: reload the page.";
  }
  if (error.status === 409 && error.bookingStatus) {
    return `Not possible: this booking is ${error.bookingStatus} now.`;
  }
  if (error.status === 503) return "The service is busy or partly down: try again in a moment.";
  return error.detail || `The request failed (HTTP ${error.status}).`;
}

/** Shows `text` in the page's news area (an empty text hides it). */
export function say(text) {
  document.getElementById("message").textContent = text;
  document.getElementById("message").hidden = !text;
}

/** Shows `text` in the page's alert area (an empty text hides it). */
export function warn(text) {
  document.getElementById("alert").textContent = text;
  document.getElementById("alert").hidden = !text;
}
