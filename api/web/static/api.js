// The JSON API as the page calls it: same-origin fetches carrying the session cookie, the
// CSRF token on unsafe requests (api/web/session.py), problem details turned into errors.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.detail = problem.detail || "";
    this.reason = problem.reason || null;
    this.bookingStatus = problem.booking_status || null;
    this.retryAfter = retryAfter;
  }

  static async from(response) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      // not JSON: the status alone says what happened
    }
    return new ApiError(response.status, problem, Number(response.headers.get("Retry-After")) || null);
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

/** A random id for Idempotency-Key and payment references (crypto.randomUUID needs HTTPS). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Calls the API; resolves to the JSON body (null for 204), rejects with ApiError. */
export async function api(method, path, body = undefined, { idempotencyKey } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method)) {
    const csrf = cookie("csrftoken");
    if (csrf) headers["X-CSRFToken"] = csrf;
  }
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (!response.ok) throw await ApiError.from(response);
  return response.status === 204 ? null : response.json();
}

/** The signed-in account (GET /api/me), or null without a valid session. */
export async function currentAccount() {
  try {
    return await api("GET", "/api/me");
  } catch (error) {
    if (error instanceof ApiError && [401, 404].includes(error.status)) return null;
    throw error;
  }
}
