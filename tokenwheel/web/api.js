// The REST API, and what each of its errors means for the person at the page.

import { t } from "./i18n.js";

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
    throw new ApiError(0, {}); // explained in the page's language by explain()
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
// Joining a class and guessing: the server's message says what went wrong (unknown or
// closed class, nickname taken, one guess per round).
const JOIN_ERRORS = new Set(["Class not found", "Class closed", "Nickname taken"]);
const GUESS_ERRORS = new Set(["Already guessed", "Round not open", "Round not found"]);

function classError(error, message) {
  if (JOIN_ERRORS.has(error.body.error)) {
    return { kind: "join", title: t("error.join.title"), text: message };
  }
  if (GUESS_ERRORS.has(error.body.error)) {
    return { kind: "guess", title: t("error.guess.title"), text: message };
  }
  return null;
}

export const STUDENT_ERRORS = {
  404: (error, message) =>
    classError(error, message) ?? {
      kind: "expired",
      title: t("error.expired.title"),
      text: t("error.expired.text"),
    },
  429: (error, message) => {
    const wait = seconds(error.retryAfter);
    return {
      kind: "rate",
      title: t("error.rate.title"),
      text: `${message || t("error.rate.text")} ${tryAgain(wait)}`,
      wait,
    };
  },
  409: (error, message) =>
    classError(error, message) ?? {
      kind: "conflict",
      title: t("error.conflict.title"),
      text: t("error.conflict.text"),
    },
  400: (error, message) => {
    if (/unknown field/i.test(String(error.body.errors?.class_code ?? ""))) {
      return { kind: "request", title: t("error.noClasses.title"), text: t("error.noClasses.text") };
    }
    const nickname = error.body.errors?.nickname;
    if (nickname || /nickname/i.test(message)) {
      const text = nickname ? `${message} ${[nickname].flat().join(" ")}` : message;
      return { kind: "join", title: t("error.join.title"), text };
    }
    return null;
  },
};

// "Try again in 7 s." (or "in a moment" when the server did not say)
export function tryAgain(wait) {
  return wait === null ? t("error.tryAgainSoon") : t("error.tryAgainIn", { seconds: wait });
}

// {kind, title, text}: what to tell the person at the page; `words` maps a status to the
// page's own explanation (see STUDENT_ERRORS).
export function explain(error, words = STUDENT_ERRORS) {
  if (!(error instanceof ApiError)) {
    return { kind: "bug", title: t("error.bug.title"), text: String(error?.message || error) };
  }
  const message = error.body.message || "";
  const own = words[error.status]?.(error, message);
  if (own) return own;
  switch (error.status) {
    case 0:
      return { kind: "network", title: t("error.network.title"), text: t("error.network.text") };
    case 503: {
      const wait = seconds(error.retryAfter);
      if (error.body.error === "Server busy") {
        const text = `${message} ${tryAgain(wait)}`;
        return { kind: "busy", title: t("error.busy.title"), text, wait };
      }
      return {
        kind: "unavailable",
        title: t("error.unavailable.title"),
        text: message || t("error.unavailable.text"),
        wait,
      };
    }
    default:
      return {
        kind: "request",
        title: t("error.request.title", { status: error.status }),
        text: message || t("error.status.text", { status: error.status }),
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
