// The API client: the token kept in localStorage, JSON requests, and live events.
const KEY = "evoforge.token";

export function token() {
  return localStorage.getItem(KEY) || "";
}

export function setToken(value) {
  localStorage.setItem(KEY, value.trim());
}

export class ApiError extends Error {}

export async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/api${path}`, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const detail = body?.error?.message || body?.detail || res.statusText;
    throw new ApiError(`${res.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

export function events(runId, handlers) {
  const url = `/api/runs/${runId}/events?interval_s=0.5&access_token=${encodeURIComponent(token())}`;
  const source = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  source.addEventListener("end", () => source.close());
  return source;
}
