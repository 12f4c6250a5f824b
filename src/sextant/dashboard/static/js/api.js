// Talks to Sextant's JSON API with the signed-in user's tokens (access JWT + rotating refresh).

const KEY = "sextant.auth";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    let message = err.message || `Request failed (${status})`;
    const details = Array.isArray(err.details) ? err.details : [];
    if (details.length) {
      const first = details[0];
      const where = first.field || (Array.isArray(first.loc) ? first.loc.join(".") : "");
      const what = first.message || first.msg || "";
      if (what && !message.includes(what)) message += `: ${where ? where + " " : ""}${what}`;
    }
    super(message);
    this.status = status;
    this.code = err.code;
    this.details = details;
  }
}

export const auth = {
  get() {
    try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch { return null; }
  },
  set(tokens) {
    const value = {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: Date.now() + (tokens.expires_in || 900) * 1000,
    };
    localStorage.setItem(KEY, JSON.stringify(value));
  },
  clear() { localStorage.removeItem(KEY); },
};

let refreshing = null;
let onSignedOut = () => {};
export function setSignedOutHandler(fn) { onSignedOut = fn; }

async function refresh() {
  const current = auth.get();
  if (!current || !current.refresh_token) throw new ApiError(401, null);
  // One refresh at a time: the refresh token rotates, so a second concurrent use would be
  // treated as token theft and end the session.
  refreshing = refreshing || (async () => {
    const res = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    });
    if (!res.ok) { auth.clear(); throw new ApiError(res.status, await res.json().catch(() => null)); }
    auth.set(await res.json());
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function queryString(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

/**
 * `fetch` with the signed-in user's token: refreshed ahead of its expiry, and once more
 * after a 401 before the request is sent again. Answers the response; an error status (a
 * final 401 signs out) is an ApiError with the body's JSON.
 */
async function send(url, { method = "GET", headers = {}, body, anonymous = false, signal } = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const sent = { ...headers };
    const tokens = auth.get();
    if (!anonymous && tokens) {
      if (tokens.expires_at - Date.now() < 15000 && attempt === 0) {
        try { await refresh(); } catch { /* the request below answers 401 and we sign out */ }
      }
      const fresh = auth.get();
      if (fresh) sent.Authorization = "Bearer " + fresh.access_token;
    }
    const res = await fetch(url, { method, headers: sent, signal, body });
    if (res.status === 401 && !anonymous && attempt === 0 && auth.get()) {
      try { await refresh(); continue; } catch { auth.clear(); onSignedOut(); }
    }
    if (!res.ok) {
      if (res.status === 401 && !anonymous) { auth.clear(); onSignedOut(); }
      throw new ApiError(res.status, await res.json().catch(() => null));
    }
    return res;
  }
  throw new ApiError(401, null);
}

export async function api(path, { method = "GET", body, params, anonymous = false, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await send(path + queryString(params), {
    method, headers, anonymous, signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  return res.json().catch(() => null);
}

/** A file from the API (an export), saved by the browser under `filename`. */
export async function download(path, params, filename) {
  const res = await send(path + queryString(params));
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function signIn(email, password) {
  const tokens = await api("/api/v1/auth/login", { method: "POST", body: { email, password }, anonymous: true });
  auth.set(tokens);
}

export async function signOut() {
  const tokens = auth.get();
  if (tokens) {
    try {
      await api("/api/v1/auth/logout", { method: "POST", body: { refresh_token: tokens.refresh_token } });
    } catch { /* signing out locally is what matters */ }
  }
  auth.clear();
}

/** An EventSource-like reader for authenticated SSE (EventSource cannot send headers). */
export function stream(path, params, onEvent, onState) {
  const controller = new AbortController();
  (async () => {
    let delay = 1000;
    while (!controller.signal.aborted) {
      try {
        const tokens = auth.get();
        if (tokens && tokens.expires_at - Date.now() < 15000) await refresh();
        const res = await fetch(path + queryString(params), {
          headers: { Accept: "text/event-stream", Authorization: "Bearer " + (auth.get() || {}).access_token },
          signal: controller.signal,
        });
        if (res.status === 401) { await refresh(); continue; }
        if (!res.ok || !res.body) throw new Error("stream failed: " + res.status);
        onState && onState("open");
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let idx;
          while ((idx = buf.indexOf("\n\n")) >= 0) {
            const chunk = buf.slice(0, idx);
            buf = buf.slice(idx + 2);
            let type = "message";
            const data = [];
            for (const line of chunk.split("\n")) {
              if (line.startsWith("event:")) type = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            }
            if (!data.length) continue;
            let parsed = data.join("\n");
            try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
            onEvent(type, parsed);
          }
        }
      } catch (e) {
        if (controller.signal.aborted) return;
      }
      onState && onState("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return () => controller.abort();
}
