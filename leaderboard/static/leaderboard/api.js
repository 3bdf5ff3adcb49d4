// The REST calls of the live page: JSON in and out, the browser's session cookie, the
// CSRF header Django asks of a session's writes, and the error envelope turned into an
// ApiError whose message is the server's own sentence.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The token of the page's own form first: it is there even when the cookie is
// HttpOnly or CSRF_USE_SESSIONS keeps it out of cookies.
function csrfToken() {
  var field = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (field && field.value) return field.value;
  var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(path, options) {
  options = options || {};
  var method = options.method || "GET";
  var headers = { Accept: "application/json" };
  var init = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = csrfToken();
    init.body = JSON.stringify(options.body || {});
  }
  var response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  var data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    var error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_" + response.status,
      error.message || "The server answered " + response.status + "."
    );
  }
  return data;
}

// The server's clock as this browser sees it: times in answers (nextResetAt,
// earliestCompletionAt) are the server's, and a phone's clock may be minutes off.
var offsetMs = 0;

export function correctClock(serverTime, sentAt, receivedAt) {
  var server = Date.parse(serverTime);
  if (!isNaN(server)) offsetMs = server - (sentAt + receivedAt) / 2;
}

export function serverNow() {
  return Date.now() + offsetMs;
}
