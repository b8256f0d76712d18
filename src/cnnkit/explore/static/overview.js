// The overview: for every layer in forward order, its code, output shape, one colour
// scale, and each channel's map as a small heatmap. Maps load when a layer scrolls into
// view, a page of channels at a time, so layers with hundreds of channels stay responsive.

import { getMaps } from "./api.js";
import { paintPlane, scaleBar } from "./colormap.js";

const PAGE = 32; // channels per request
const FIRST_SHOWN = 64; // channels shown before "show more"
export const VECTOR_COLUMNS = 32; // a (features,) output is drawn in rows of this many

export function limitOf(layer) {
  return Math.max(Math.abs(layer.min), Math.abs(layer.max)) || 1;
}

function frame() {
  return new Promise((resolve) => requestAnimationFrame(() => resolve()));
}

export class Overview {
  constructor(root, onSelect) {
    this.root = root;
    this.onSelect = onSelect;
    this.blocks = new Map();
    this.generation = 0;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) this.load(entry.target.dataset.layer);
      }
    }, { rootMargin: "400px" });
  }

  render(state) {
    this.root.replaceChildren();
    this.blocks.clear();
    this.state = state;
    for (const layer of state.layers) {
      const block = document.createElement("div");
      block.className = "layer";
      block.dataset.layer = layer.name;
      const head = document.createElement("div");
      head.className = "layer-head";
      const name = document.createElement("span");
      name.className = "layer-name";
      name.textContent = `${layer.name} · ${layer.type}`;
      const code = document.createElement("span");
      code.className = "layer-code";
      code.textContent = layer.description;
      const shape = document.createElement("span");
      shape.className = "layer-shape";
      shape.textContent = `→ ${layer.output_shape.join(" × ")}`;
      const scale = document.createElement("span");
      scale.className = "scale-slot";
      head.append(name, code, shape, scale);
      const maps = document.createElement("div");
      maps.className = "maps";
      const pending = document.createElement("span");
      pending.className = "pending";
      pending.textContent = "maps load when shown…";
      maps.append(pending);
      block.append(head, maps);
      this.root.append(block);
      maps.style.minHeight = `${this.expectedHeight(layer)}px`; // so only layers in view load
      this.blocks.set(layer.name, { layer, block, maps, scale, shown: 0, wanted: FIRST_SHOWN, loading: null });
      this.observer.observe(block);
    }
    this.updateScales(state);
  }

  expectedHeight(layer) {
    if (layer.output_shape.length !== 3) return 40;
    const [channels, h, w] = layer.output_shape;
    const side = Math.max(h, w) >= 48 ? 96 : 64;
    const width = (side * w) / Math.max(h, w) + 10;
    const perRow = Math.max(1, Math.floor((this.root.clientWidth - 40) / width));
    return Math.ceil(Math.min(channels, FIRST_SHOWN) / perRow) * ((side * h) / Math.max(h, w) + 22);
  }

  updateScales(state) {
    this.state = state;
    for (const layer of state.layers) {
      const entry = this.blocks.get(layer.name);
      if (!entry) continue;
      entry.layer = layer;
      entry.scale.replaceChildren(scaleBar(limitOf(layer), layer.min, layer.max));
    }
  }

  // New input or edited weights: new scales, and every map already drawn is drawn again.
  async refresh(state) {
    this.generation += 1;
    this.updateScales(state);
    for (const entry of this.blocks.values()) {
      if (entry.shown > 0 || entry.loading) {
        entry.wanted = Math.max(entry.wanted, entry.shown);
        entry.shown = 0;
        entry.loading = null;
        entry.maps.replaceChildren();
        this.load(entry.layer.name);
      }
    }
  }

  load(name) {
    const entry = this.blocks.get(name);
    if (!entry || entry.loading) return entry ? entry.loading : null;
    entry.loading = this.fill(entry, this.generation).finally(() => { entry.loading = null; });
    return entry.loading;
  }

  async fill(entry, generation) {
    const { layer } = entry;
    if (layer.output_shape.length !== 3) {
      if (entry.shown === 0) await this.vector(entry, generation);
      return;
    }
    const channels = layer.output_shape[0];
    const target = Math.min(channels, entry.wanted);
    if (entry.shown === 0) entry.maps.replaceChildren();
    while (entry.shown < target) {
      const count = Math.min(PAGE, target - entry.shown);
      const { shape, data } = await getMaps(layer.name, entry.shown, count);
      if (generation !== this.generation) return;
      const [n, h, w] = shape;
      const limit = limitOf(entry.layer);
      const side = Math.max(h, w) >= 48 ? 96 : 64;
      for (let i = 0; i < n; i++) {
        entry.maps.append(this.tile(layer, entry.shown + i, data, i * h * w, h, w, limit, side));
      }
      entry.shown += n;
      await frame(); // let the page draw and answer clicks between pages
    }
    entry.maps.style.minHeight = "";
    entry.maps.querySelector(".more")?.remove();
    if (entry.shown < channels) {
      const more = document.createElement("button");
      more.className = "more";
      more.textContent = `show ${Math.min(channels - entry.shown, FIRST_SHOWN)} more of ${channels - entry.shown} channels`;
      more.onclick = () => {
        entry.wanted = entry.shown + FIRST_SHOWN;
        more.remove();
        this.load(layer.name);
      };
      entry.maps.append(more);
    }
  }

  tile(layer, channel, data, offset, h, w, limit, side) {
    const figure = document.createElement("div");
    figure.className = "map";
    figure.dataset.layer = layer.name;
    figure.dataset.channel = channel;
    figure.title = `layer ${layer.name}, channel ${channel}: click for details`;
    const canvas = document.createElement("canvas");
    paintPlane(canvas, data, offset, h, w, limit);
    const scale = side / Math.max(h, w);
    canvas.style.width = `${Math.round(w * scale)}px`;
    canvas.style.height = `${Math.round(h * scale)}px`;
    const label = document.createElement("span");
    label.textContent = channel;
    figure.append(canvas, label);
    figure.onclick = () => this.select(layer.name, channel);
    return figure;
  }

  async vector(entry, generation) {
    const { layer } = entry;
    const { data } = await getMaps(layer.name, 0, 1);
    if (generation !== this.generation) return;
    const features = data.length;
    const columns = Math.min(features, VECTOR_COLUMNS);
    const rows = Math.ceil(features / columns);
    const padded = new Float32Array(rows * columns);
    padded.set(data);
    const figure = document.createElement("div");
    figure.className = "map";
    figure.dataset.layer = layer.name;
    figure.dataset.channel = 0;
    figure.title = `layer ${layer.name}: ${features} values; click for details`;
    const canvas = document.createElement("canvas");
    paintPlane(canvas, padded, 0, rows, columns, limitOf(entry.layer));
    const cell = Math.max(4, Math.min(16, Math.floor(512 / columns)));
    canvas.style.width = `${columns * cell}px`;
    canvas.style.height = `${rows * cell}px`;
    const label = document.createElement("span");
    const names = this.state.classes;
    label.textContent = features === names.length && entry.layer === this.state.layers.at(-1)
      ? `one value per class (${names.slice(0, 4).join(", ")}…)` : `${features} values`;
    figure.append(canvas, label);
    figure.onclick = () => this.select(layer.name, 0);
    entry.maps.replaceChildren(figure);
    entry.maps.style.minHeight = "";
    entry.shown = 1;
  }

  select(name, channel) {
    for (const tile of this.root.querySelectorAll(".map.selected")) tile.classList.remove("selected");
    const tile = this.root.querySelector(`.map[data-layer="${CSS.escape(name)}"][data-channel="${channel}"]`);
    tile?.classList.add("selected");
    this.onSelect(this.blocks.get(name).layer, channel);
  }
}
