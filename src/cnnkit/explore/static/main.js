// The page: wires the input panel, the overview and the detail view to the API.

import { getState, isExport, notify, resetWeights } from "./api.js";
import { format } from "./colormap.js";
import { DetailView } from "./detail.js";
import { InputPanel } from "./input.js";
import { Overview } from "./overview.js";

const main = document.querySelector("main");
const resetButton = document.getElementById("reset-edits");
let state = null;

function drawProbabilities() {
  const box = document.getElementById("probabilities");
  const p = state.probabilities;
  const best = p.indexOf(Math.max(...p));
  box.replaceChildren();
  const order = p.map((v, k) => k);
  if (p.length > 20) order.sort((a, b) => p[b] - p[a]);
  for (const k of order.slice(0, 20)) {
    const row = document.createElement("div");
    row.className = `bar${k === best ? " best" : ""}`;
    row.dataset.class = k;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = state.classes[k];
    label.title = state.classes[k];
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * p[k]).toFixed(2)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${(100 * p[k]).toFixed(1)}%`;
    value.dataset.value = p[k];
    row.append(label, track, value);
    box.append(row);
  }
  if (p.length > 20) {
    const note = document.createElement("div");
    note.className = "muted";
    note.textContent = `the 20 most likely of ${p.length} classes`;
    box.append(note);
  }
  document.getElementById("summary").textContent =
    `${state.layers.length} layers · input ${state.input_shape.join("×")} · prediction: ${state.classes[best]} (${format(100 * p[best], 3)}%)`;
  resetButton.hidden = isExport || state.edits.length === 0;
  resetButton.textContent = `Reset ${state.edits.length} edited weight${state.edits.length === 1 ? "" : "s"}`;
}

const overview = new Overview(document.getElementById("overview"), (layer, channel) => detail.open(layer, channel));
const detail = new DetailView(document.getElementById("detail"), {
  onOpen: () => main.classList.add("with-detail"),
  onField: (field) => input.showField(field),
  onEdit: () => update(),
  onClose: () => {
    main.classList.remove("with-detail");
    input.showField(null);
  },
});
const input = new InputPanel(document.getElementById("input-panel"), () => update());

// Something changed on the server (input, weights): fetch the state and redraw.
async function update() {
  state = await getState();
  drawProbabilities();
  await Promise.all([input.refresh(state), overview.refresh(state), detail.refresh(state)]);
  document.body.dataset.updated = String(Number(document.body.dataset.updated || 0) + 1);
}

resetButton.onclick = async () => {
  await resetWeights();
  notify("Every edited weight is back to its saved value.", "info");
  await update();
};

async function start() {
  try {
    state = await getState();
  } catch {
    return; // the notice says why
  }
  drawProbabilities();
  overview.render(state);
  await input.render(state);
  const layers = overview.blocks;
  await Promise.all([...layers.keys()].slice(0, 3).map((name) => overview.load(name)));
  document.body.dataset.ready = "true";
  window.cnnkitReadyMs = performance.now();
}

window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (!event.reason?.notified) notify(`Something went wrong on this page: ${event.reason?.message || event.reason}`);
});
start();
