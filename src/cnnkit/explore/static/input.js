// The input panel: the prepared input (as the model sees it), bundled samples, upload and
// drag-and-drop, a drawing pad for small gray inputs, saliency and Grad-CAM overlays,
// and the receptive field of the clicked cell.

import { getOverlay, getPrepared, getSamples, isExport, notify, postImage, postSample } from "./api.js";
import { format, heat } from "./colormap.js";

const VIEW = 272; // the input is drawn this many pixels on its longer side
const PAD = 168; // drawing pad size in pixels
const PAD_SEND_MS = 120; // at most one prediction request per this many ms while drawing

export class InputPanel {
  constructor(root, onChange) {
    this.root = root;
    this.onChange = onChange;
    this.overlay = { kind: "none", klass: "predicted", layer: "" };
    this.field = null;
  }

  async render(state) {
    this.state = state;
    const [c, h, w] = state.input_shape;
    this.root.replaceChildren();
    const title = document.createElement("h2");
    title.textContent = `Input (${c} × ${h} × ${w}, prepared as cnnkit predict does)`;
    const view = document.createElement("div");
    view.className = "input-view";
    const scale = VIEW / Math.max(h, w);
    view.style.width = `${Math.round(w * scale)}px`;
    view.style.height = `${Math.round(h * scale)}px`;
    this.pixels = document.createElement("canvas");
    this.heatLayer = document.createElement("canvas");
    this.boxLayer = document.createElement("canvas");
    this.boxLayer.width = Math.round(w * scale);
    this.boxLayer.height = Math.round(h * scale);
    view.append(this.pixels, this.heatLayer, this.boxLayer);
    this.view = view;
    this.sourceLine = document.createElement("div");
    this.sourceLine.className = "source";
    this.root.append(title, view, this.sourceLine);
    if (!isExport) {
      this.root.append(this.overlayControls(state), await this.samples(), this.upload());
      if (c === 1 && h <= 64 && w <= 64) this.root.append(this.pad());
    }
    await this.refresh(state);
  }

  async refresh(state) {
    this.state = state;
    this.sourceLine.textContent = state.source ? `showing: ${state.source}` : "showing: a blank input";
    await this.drawPixels();
    await this.drawOverlay();
    this.drawField();
  }

  async drawPixels() {
    const { shape, data } = await getPrepared();
    const [c, h, w] = shape;
    const plane = h * w;
    this.pixels.width = w;
    this.pixels.height = h;
    const context = this.pixels.getContext("2d");
    const image = context.createImageData(w, h);
    let low = Infinity, high = -Infinity;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = 4 * (y * w + x);
        const p = y * w + x;
        const rgb = c === 3 ? [data[p], data[plane + p], data[2 * plane + p]] : [data[p], data[p], data[p]];
        for (let k = 0; k < 3; k++) {
          low = Math.min(low, rgb[k]);
          high = Math.max(high, rgb[k]);
          image.data[i + k] = Math.max(0, Math.min(255, Math.round(rgb[k] * 255)));
        }
        image.data[i + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
    this.pixels.title = `prepared input: values from ${format(low)} to ${format(high)}` +
      (c !== 1 && c !== 3 ? " (first channel shown)" : "");
  }

  overlayControls(state) {
    const box = document.createElement("div");
    const heading = document.createElement("h3");
    heading.textContent = "Overlay: what the prediction looks at";
    const row = document.createElement("div");
    row.className = "row";
    const kind = select([["none", "none"], ["saliency", "saliency (input gradient)"], ["gradcam", "Grad-CAM"]]);
    kind.id = "overlay-kind";
    const klass = select([["predicted", "predicted class"], ...state.classes.map((name, k) => [String(k), `class ${name}`])]);
    klass.id = "overlay-class";
    const spatial = state.layers.filter((layer) => layer.spatial);
    const convs = spatial.filter((layer) => layer.type === "Conv2d");
    const layer = select(spatial.map((l) => [l.name, `layer ${l.name} (${l.type})`]));
    layer.id = "overlay-layer";
    layer.value = (convs.at(-1) || spatial.at(-1) || { name: "" }).name;
    layer.hidden = true;
    const update = () => {
      this.overlay = { kind: kind.value, klass: klass.value, layer: layer.value };
      layer.hidden = kind.value !== "gradcam";
      this.drawOverlay();
    };
    kind.onchange = klass.onchange = layer.onchange = update;
    row.append(kind, klass, layer);
    box.append(heading, row);
    return box;
  }

  predicted() {
    const p = this.state.probabilities;
    return p.indexOf(Math.max(...p));
  }

  async drawOverlay() {
    const [, h, w] = this.state.input_shape;
    const context = this.heatLayer.getContext("2d");
    this.heatLayer.width = w;
    this.heatLayer.height = h;
    if (this.overlay.kind === "none" || isExport) return;
    const klass = this.overlay.klass === "predicted" ? this.predicted() : Number(this.overlay.klass);
    const { data } = await getOverlay(this.overlay.kind, klass, this.overlay.kind === "gradcam" ? this.overlay.layer : null);
    const image = context.createImageData(w, h);
    for (let i = 0; i < h * w; i++) image.data.set(heat(data[i]), 4 * i);
    context.putImageData(image, 0, 0);
  }

  showField(field) {
    this.field = field;
    this.drawField();
  }

  drawField() {
    const canvas = this.boxLayer;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.field || !this.field.box) return;
    const [, h, w] = this.state.input_shape;
    const [top, left, bottom, right] = this.field.box;
    const sy = canvas.height / h, sx = canvas.width / w;
    context.fillStyle = "rgba(36, 88, 198, 0.18)";
    context.fillRect(left * sx, top * sy, (right - left) * sx, (bottom - top) * sy);
    context.strokeStyle = "#2458c6";
    context.lineWidth = 2;
    context.strokeRect(left * sx + 1, top * sy + 1, (right - left) * sx - 2, (bottom - top) * sy - 2);
  }

  async samples() {
    const box = document.createElement("div");
    const heading = document.createElement("h3");
    heading.textContent = "Samples";
    const list = document.createElement("div");
    list.className = "samples";
    const { samples } = await getSamples();
    for (const sample of samples) {
      const button = document.createElement("button");
      button.textContent = sample.label;
      button.dataset.sample = sample.name;
      button.onclick = async () => this.changed(await postSample(sample.name));
      list.append(button);
    }
    box.append(heading, list);
    return box;
  }

  upload() {
    const box = document.createElement("div");
    const heading = document.createElement("h3");
    heading.textContent = "Your picture";
    const drop = document.createElement("label");
    drop.className = "drop";
    drop.textContent = "choose a picture, or drop one here";
    const file = document.createElement("input");
    file.type = "file";
    file.accept = "image/*";
    file.id = "upload";
    file.hidden = true;
    file.onchange = () => file.files[0] && this.send(file.files[0], file.files[0].name);
    drop.append(file);
    for (const target of [drop, this.view]) {
      target.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
      target.addEventListener("dragleave", () => drop.classList.remove("over"));
      target.addEventListener("drop", (event) => {
        event.preventDefault();
        drop.classList.remove("over");
        const dropped = event.dataTransfer.files[0];
        if (dropped) this.send(dropped, dropped.name);
      });
    }
    box.append(heading, drop);
    return box;
  }

  async send(blob, name) {
    try {
      this.changed(await postImage(blob, name));
    } catch {
      // the server's message is already on the page
    }
  }

  async changed(payload) {
    this.field = null;
    await this.onChange(payload);
  }

  pad() {
    const box = document.createElement("div");
    const heading = document.createElement("h3");
    heading.textContent = "Draw (the prediction follows your pen)";
    const canvas = document.createElement("canvas");
    canvas.id = "pad";
    canvas.width = canvas.height = PAD;
    const context = canvas.getContext("2d");
    const clear = () => {
      context.fillStyle = "#fff";
      context.fillRect(0, 0, PAD, PAD);
    };
    clear();
    context.lineCap = context.lineJoin = "round";
    context.lineWidth = PAD / 9;
    context.strokeStyle = "#000";
    let drawing = false, last = null, inFlight = false, again = false, timer = null;
    const submit = async () => {
      if (inFlight) { again = true; return; }
      inFlight = true;
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      try {
        await this.send(blob, "drawing");
      } finally {
        inFlight = false;
        if (again) { again = false; submit(); }
      }
    };
    const point = (event) => {
      const rect = canvas.getBoundingClientRect();
      return [(event.clientX - rect.left) * PAD / rect.width, (event.clientY - rect.top) * PAD / rect.height];
    };
    canvas.addEventListener("pointerdown", (event) => {
      drawing = true;
      last = point(event);
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      const next = point(event);
      context.beginPath();
      context.moveTo(...last);
      context.lineTo(...next);
      context.stroke();
      last = next;
      if (!timer) timer = setTimeout(() => { timer = null; submit(); }, PAD_SEND_MS);
    });
    const stop = () => { if (drawing) { drawing = false; submit(); } };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    const button = document.createElement("button");
    button.textContent = "clear";
    button.onclick = () => { clear(); notify("Pad cleared: draw a digit", "info"); };
    const row = document.createElement("div");
    row.className = "row";
    row.append(canvas, button);
    box.append(heading, row);
    return box;
  }
}

function select(options) {
  const element = document.createElement("select");
  for (const [value, label] of options) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    element.append(option);
  }
  return element;
}
