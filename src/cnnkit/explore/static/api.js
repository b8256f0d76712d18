// Talking to the explorer's server (or, in an exported page, to the data saved in it).
// Every number the page shows comes from here; nothing is recomputed in the browser.

const STATIC = globalThis.CNNKIT_EXPORT || null;
const TOKEN = new URLSearchParams(location.search).get("token") || "";

export const isExport = STATIC !== null;

export function notify(message, kind = "error") {
  const box = document.getElementById("notices");
  const note = document.createElement("div");
  note.className = `notice ${kind}`;
  note.textContent = message;
  const close = document.createElement("button");
  close.textContent = "×";
  close.setAttribute("aria-label", "dismiss");
  close.onclick = () => note.remove();
  note.append(close);
  box.append(note);
  if (kind !== "error") setTimeout(() => note.remove(), 4000);
}

export async function request(path, { method = "GET", body = null, json = null } = {}) {
  if (STATIC) throw new Error("this saved page has no server: run cnnkit explore for that");
  const headers = { "X-Cnnkit-Token": TOKEN };
  if (json !== null) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers });
  } catch (error) {
    notify(`The explorer server does not answer (${error.message}); is cnnkit explore still running?`);
    throw Object.assign(error, { notified: true });
  }
  let payload;
  try {
    payload = await response.json();
  } catch {
    payload = { error: `the server answered ${response.status} without JSON` };
  }
  if (!response.ok) {
    const message = payload.error || `request failed with status ${response.status}`;
    notify(message);
    throw Object.assign(new Error(message), { notified: true });
  }
  return payload;
}

// Base64 float32 little-endian values (the server's packed maps) as a Float32Array.
export function decode(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i); // 10x faster than Uint8Array.from(text, f)
  return new Float32Array(bytes.buffer);
}

function query(params) {
  return new URLSearchParams(params).toString();
}

export async function getState() {
  return STATIC ? STATIC.state : request("/api/state");
}

// The prepared input: {shape: [C, H, W], data: Float32Array}.
export async function getPrepared() {
  const payload = STATIC ? STATIC.prepared : await request("/api/prepared");
  return { shape: payload.shape, data: decode(payload.data) };
}

// Channels start .. start + count of a layer's output (or input): {shape, data: Float32Array}.
export async function getMaps(layer, start, count, which = "output") {
  if (STATIC) {
    const saved = STATIC.maps[layer];
    const [channels, ...rest] = saved.shape;
    const size = rest.reduce((a, b) => a * b, 1);
    const end = Math.min(channels, start + count);
    const all = decode(saved.data);
    return { shape: [end - start, ...rest], data: all.subarray(start * size, end * size) };
  }
  const payload = await request(`/api/maps?${query({ layer, start, count, which })}`);
  return { shape: payload.shape, data: decode(payload.data) };
}

export async function getDetail(layer, channel, y, x) {
  return request(`/api/detail?${query({ layer, channel, y, x })}`);
}

export async function getReceptiveField(layer, channel, y, x) {
  return request(`/api/receptive_field?${query({ layer, channel, y, x })}`);
}

export async function getOverlay(kind, klass, layer) {
  const params = { kind, class: klass };
  if (layer) params.layer = layer;
  const payload = await request(`/api/overlay?${query(params)}`);
  return { shape: payload.shape, data: decode(payload.data) };
}

export async function getSamples() {
  return STATIC ? { samples: [] } : request("/api/samples");
}

export async function postImage(blob, name) {
  return request(`/api/input?${query({ name })}`, { method: "POST", body: blob });
}

export async function postSample(name) {
  return request("/api/sample", { method: "POST", json: { name } });
}

export async function setWeight(layer, index, value) {
  return request("/api/kernel", { method: "POST", json: { layer, index, value } });
}

export async function resetWeights() {
  return request("/api/kernel/reset", { method: "POST" });
}
