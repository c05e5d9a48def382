// The REST API, and what each of its errors means for the person at the page.

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

// A change the server must apply once: each gets its own Idempotency-Key, sent again
// with its retry, so a change that reached a server before it died is answered from the
// stored first answer instead of being applied twice. crypto.randomUUID needs a secure
// context (https or localhost); a campus server on plain http has only getRandomValues.
function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const RETRY_AFTER_MS = 500;

// A 502, 503 or 504 that is not one of our JSON errors comes from a load balancer in
// front of the servers (the server it chose just died, or none was up): worth one retry.
// A Token Wheel server's own 503 (busy, model loading) says so in JSON and is shown.
function fromTheBalancer(response) {
  const json = (response.headers.get("Content-Type") || "").includes("application/json");
  return [502, 503, 504].includes(response.status) && !json;
}

const pause = (ms) => new Promise((done) => window.setTimeout(done, ms));

async function attempt(path, init) {
  try {
    return await fetch(path, init);
  } catch {
    return null; // no answer at all
  }
}

// One request; any answer but 2xx (or no answer) becomes an ApiError with the JSON body.
// No answer, or a balancer's error, is tried once more after a short pause, with the
// same Idempotency-Key for a change (POST): the server applies it at most once.
async function send(method, path, { body, headers = {}, accept = "application/json" } = {}) {
  const key = method === "POST" ? { "Idempotency-Key": idempotencyKey() } : {};
  const init = { method, headers: { Accept: accept, ...key, ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response = await attempt(path, init);
  if (response === null || fromTheBalancer(response)) {
    await pause(RETRY_AFTER_MS);
    response = await attempt(path, init);
  }
  if (response === null) {
    throw new ApiError(0, {
      error: "No connection",
      message: "The Token Wheel server does not answer. Is it still running?",
    });
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw new ApiError(response.status, data, response.headers.get("Retry-After"));
  }
  return response;
}

export async function call(method, path, body, headers = {}) {
  const response = await send(method, path, { body, headers });
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// A file from the server as {blob, filename} (the name from Content-Disposition), for
// downloads that need headers a plain link cannot send.
export async function fetchFile(path, headers = {}) {
  const response = await send("GET", path, { headers, accept: "*/*" });
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const filename = disposition.match(/filename="([^"]+)"/)?.[1] ?? "download";
  return { blob: await response.blob(), filename };
}

function seconds(retryAfter) {
  const n = Number(retryAfter);
  if (Number.isFinite(n) && n >= 0) return Math.ceil(n);
  const date = Date.parse(retryAfter ?? "");
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

// What each error means for a student, by status: {kind, title, text, wait}. `kind` lets
// the page offer the right next step ("expired": start a new session; "rate": wait `wait`
// seconds). A function may return null to leave the status to the general words.
export const STUDENT_ERRORS = {
  404: () => ({
    kind: "expired",
    title: "Session expired or deleted",
    text: "This session has expired or was deleted. Start a new one: your prompt is still in the box.",
  }),
  429: (error, message) => {
    const wait = seconds(error.retryAfter);
    const when = wait === null ? "in a moment" : `in ${wait} s`;
    return {
      kind: "rate",
      title: "Too many requests",
      text: `${message || "The server is busy with this class."} Try again ${when}.`,
      wait,
    };
  },
  409: () => ({
    kind: "conflict",
    title: "Changed elsewhere",
    text: "This session changed in another tab while you chose. Here it is as it is now: choose again.",
  }),
  400: (error) =>
    /unknown field/i.test(String(error.body.errors?.class_code ?? ""))
      ? {
          kind: "request",
          title: "No class codes here",
          text: "This server does not use class codes. Empty the class code box and start again.",
        }
      : null,
};

// {kind, title, text}: what to tell the person at the page; `words` maps a status to the
// page's own explanation (see STUDENT_ERRORS).
export function explain(error, words = STUDENT_ERRORS) {
  if (!(error instanceof ApiError)) {
    return { kind: "bug", title: "Something went wrong", text: String(error?.message || error) };
  }
  const message = error.body.message || "";
  const own = words[error.status]?.(error, message);
  if (own) return own;
  switch (error.status) {
    case 0:
      return { kind: "network", title: error.body.error, text: message };
    case 503: {
      const wait = seconds(error.retryAfter);
      if (error.body.error === "Server busy") {
        return {
          kind: "busy",
          title: "Server busy",
          text: `${message} Try again ${wait === null ? "in a moment" : `in ${wait} s`}.`,
          wait,
        };
      }
      return {
        kind: "unavailable",
        title: "Model loading or unavailable",
        text: message || "The model is not ready. Try again in a moment or choose another model.",
        wait,
      };
    }
    default:
      return {
        kind: "request",
        title: error.body.error || `Error ${error.status}`,
        text: message || `The server answered ${error.status}.`,
      };
  }
}

// Show an explained error in a page's message box ({message, messageTitle, messageText}).
export function showMessage(box, error, info) {
  if (!(error instanceof ApiError)) console.error(error); // a bug in this page
  box.messageTitle.textContent = info.title;
  box.messageText.textContent = info.text;
  box.message.dataset.kind = info.kind;
  box.message.hidden = false;
}
