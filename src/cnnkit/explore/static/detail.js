// The detail view: one map large, and for a clicked cell how the layer computed it, with
// the numbers the server returns (a convolution's windows, kernel, partial sums, bias
// and total; every other layer's formula). Kernel values can be edited here.

import { getDetail, getMaps, getReceptiveField, isExport, notify, setWeight } from "./api.js";
import { cssColour, format, inkOn, paintPlane } from "./colormap.js";
import { limitOf, VECTOR_COLUMNS } from "./overview.js";

const BIG = 320; // the selected map is drawn this many pixels on its longer side
const CHANNELS_SHOWN = 6; // input channels listed before "show all"
const ANIMATION_STEPS = 160; // at most this many window positions per sweep
const ANIMATION_MS = 90;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(v, className = "") {
  const node = element("span", `num ${className}`.trim(), format(v, 5));
  node.dataset.value = v;
  return node;
}

function line(...parts) {
  const node = element("div", "formula");
  for (const part of parts) node.append(typeof part === "string" ? document.createTextNode(part) : part);
  return node;
}

// A table of values (rows of numbers), coloured on the scale [-limit, limit].
function grid(rows, { limit, inside = null, mark = null, editable = null }) {
  const table = element("table", "grid");
  rows.forEach((row, i) => {
    const tr = element("tr");
    row.forEach((v, j) => {
      const td = element("td");
      if (inside && !inside[i][j]) {
        td.className = "pad";
        td.textContent = "pad";
        td.title = "padding";
      } else if (editable) {
        const input = element("input");
        input.type = "text"; // no spinner: the whole value stays readable
        input.inputMode = "decimal";
        input.value = Number(v.toPrecision(4));
        input.dataset.i = i;
        input.dataset.j = j;
        input.title = "edit this weight and press Enter";
        input.addEventListener("change", () => {
          const value = Number(input.value);
          if (input.value.trim() === "" || !Number.isFinite(value)) {
            notify(`A weight must be a number, got "${input.value}"`);
            return;
          }
          editable(i, j, value);
        });
        td.append(input);
        td.style.background = cssColour(v, limit);
      } else {
        td.textContent = format(v);
        td.dataset.value = v;
        td.style.background = cssColour(v, limit);
        td.style.color = inkOn(v, limit);
      }
      if (mark && mark[0] === i && mark[1] === j) td.classList.add("win");
      tr.append(td);
    });
    table.append(tr);
  });
  return table;
}

function absMax(rows) {
  let m = 0;
  for (const row of rows) for (const v of row) m = Math.max(m, Math.abs(v));
  return m || 1;
}

export class DetailView {
  constructor(root, { onOpen, onField, onEdit, onClose }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onField = onField;
    this.onEdit = onEdit;
    this.onClose = onClose;
    this.timer = null;
    this.selection = null;
  }

  close() {
    this.stopAnimation();
    this.selection = null;
    this.root.hidden = true;
    this.root.replaceChildren();
    this.onClose();
  }

  async open(layer, channel) {
    this.stopAnimation();
    this.selection = { layer, channel, cell: null };
    this.root.hidden = false;
    this.onOpen();
    await this.draw();
  }

  async refresh(state) {
    if (!this.selection) return;
    const layer = state.layers.find((l) => l.name === this.selection.layer.name);
    if (!layer) return this.close();
    this.selection.layer = layer;
    await this.draw();
  }

  async draw() {
    this.stopAnimation();
    const { layer, channel } = this.selection;
    this.root.replaceChildren();
    const close = element("button", "close", "close ×");
    close.onclick = () => this.close();
    const title = element("h2", "", layer.output_shape.length === 3
      ? `Layer ${layer.name} · ${layer.type} · channel ${channel}` : `Layer ${layer.name} · ${layer.type}`);
    const code = element("div", "layer-code", layer.description);
    this.root.append(close, title, code);
    const { shape, data } = await getMaps(layer.name, channel, 1);
    const spatial = layer.output_shape.length === 3;
    let h, w, plane = data;
    if (spatial) {
      [, h, w] = shape;
    } else {
      w = Math.min(data.length, VECTOR_COLUMNS);
      h = Math.ceil(data.length / w);
      plane = new Float32Array(h * w);
      plane.set(data);
    }
    const holder = element("div");
    holder.style.position = "relative";
    holder.style.display = "inline-block";
    const canvas = element("canvas", "big-map");
    paintPlane(canvas, plane, 0, h, w, limitOf(layer));
    const scale = Math.min(BIG / Math.max(h, w), 40);
    canvas.style.width = `${Math.round(w * scale)}px`;
    canvas.style.height = `${Math.round(h * scale)}px`;
    canvas.id = "detail-map";
    const marker = element("canvas");
    marker.width = Math.round(w * scale);
    marker.height = Math.round(h * scale);
    marker.style.position = "absolute";
    marker.style.left = marker.style.top = "1px";
    marker.style.pointerEvents = "none";
    holder.append(canvas, marker);
    this.map = { h, w, scale, marker, spatial, length: data.length };
    canvas.onclick = (event) => {
      const rect = canvas.getBoundingClientRect();
      const x = Math.floor((event.clientX - rect.left) / rect.width * w);
      const y = Math.floor((event.clientY - rect.top) / rect.height * h);
      if (!spatial && y * w + x >= data.length) return;
      this.pick(spatial ? [y, x] : [y * w + x]);
    };
    const hint = element("div", "muted", isExport ? "This saved page shows the maps only; run cnnkit explore for the numbers behind each cell."
      : "Click a cell to see how its value was computed.");
    this.explanation = element("div");
    this.explanation.id = "explanation";
    this.root.append(holder, hint, this.explanation);
    if (this.selection.cell) await this.pick(this.selection.cell);
  }

  markCell(cell) {
    const { marker, scale, w, spatial } = this.map;
    const context = marker.getContext("2d");
    context.clearRect(0, 0, marker.width, marker.height);
    const [y, x] = spatial ? cell : [Math.floor(cell[0] / w), cell[0] % w];
    context.strokeStyle = "#111";
    context.lineWidth = 2;
    context.strokeRect(x * scale + 1, y * scale + 1, scale - 2, scale - 2);
  }

  async pick(cell) {
    if (isExport) return;
    this.stopAnimation();
    this.selection.cell = cell;
    this.markCell(cell);
    const { layer, channel } = this.selection;
    const [y, x] = this.map.spatial ? cell : [0, 0];
    const index = this.map.spatial ? channel : cell[0];
    const detail = await getDetail(layer.name, index, y, x);
    this.explanation.replaceChildren(...this.explain(detail, layer));
    this.onField(this.map.spatial ? await getReceptiveField(layer.name, channel, y, x) : null);
  }

  explain(d, layer) {
    const where = d.position.length === 3 ? `[${d.position.join(", ")}]` : `[${d.position[0]}]`;
    const header = element("h3", "", `Output ${where} of layer ${d.layer} = `);
    header.append(number(d.value, "total"));
    header.id = "detail-value";
    const parts = [header];
    const kind = {
      conv: () => this.conv(d, layer),
      maxpool: () => this.pool(d),
      avgpool: () => this.pool(d),
      elementwise: () => [line(`${d.formula}\nx = `, number(d.input), "\nresult = ", number(d.total, "total"))],
      batchnorm: () => [line("(x − running_mean) / √(running_var + eps) × weight + bias\n= (",
        number(d.input), " − ", number(d.running_mean), ") / √(", number(d.running_var), " + ",
        number(d.eps), ") × ", number(d.weight), " + ", number(d.bias), "\n= ",
        number(d.normalised), " × ", number(d.weight), " + ", number(d.bias), " = ", number(d.total, "total")),
        element("div", "muted", "Evaluation mode: the running statistics saved with the model are used.")],
      globalpool: () => [line(`mean of the ${d.input_shape[1]} × ${d.input_shape[2]} values of input channel ${d.position[0]}\n= `,
        number(d.sum), ` / ${d.count} = `, number(d.total, "total"))],
      linear: () => this.linear(d),
      flatten: () => [line(`value = input[${d.source.join(", ")}] of shape ${d.input_shape.join(" × ")} = `, number(d.total, "total"))],
      softmax: () => this.softmax(d),
      residual: () => [line(`body(x) + ${d.identity ? "x (identity shortcut)" : "shortcut(x)"}\n= `,
        number(d.body), " + ", number(d.shortcut), " = ", number(d.total, "total"))],
      concat: () => [line(`channel ${d.position[0]} of the joined output is channel ${d.source[0]} of branch ${d.branch}\n= `,
        number(d.total, "total"))],
      binary: () => [line(`a ${d.symbol} b\n= `, number(d.a), ` ${d.symbol} `, number(d.b), " = ", number(d.total, "total"))],
    }[d.kind];
    return [...parts, ...(kind ? kind() : [line("value = ", number(d.total, "total"))])];
  }

  conv(d, layer) {
    const g = d.geometry;
    const out = [];
    out.push(line(`Σ over ${d.channels.length} input channel(s) of (window ⊙ kernel) + bias\n= `,
      number(d.sum), " + ", number(d.bias), " = ", number(d.total, "total"),
      `\nkernel ${g.kernel.join("×")}, stride ${g.stride.join(",")}, padding ${g.padding.join(",")} (top, bottom, left, right), dilation ${g.dilation.join(",")}${g.padding_mode !== "zeros" ? `, ${g.padding_mode} padding` : ""}`));
    const order = d.partial_sums.map((p, i) => i).sort((a, b) => Math.abs(d.partial_sums[b]) - Math.abs(d.partial_sums[a]));
    out.push(this.animation(d, layer, d.channels[order[0]]));
    const list = element("div");
    const limit = absMax(d.windows.flat());
    const klimit = absMax(d.kernel.flat());
    const show = (count) => {
      list.replaceChildren();
      for (const i of order.slice(0, count)) {
        const row = element("div", "channel-row");
        row.dataset.channel = d.channels[i];
        row.append(element("span", "muted", `input ${d.channels[i]}`),
          grid(d.windows[i], { limit, inside: d.inside }), element("span", "op", "⊙"),
          grid(d.kernel[i], { limit: klimit, editable: (a, b, value) => this.edit(layer, d, i, a, b, value) }),
          element("span", "op", "="), number(d.partial_sums[i], "partial"));
        list.append(row);
      }
      if (count < order.length) {
        const more = element("button", "", `show all ${order.length} input channels`);
        more.onclick = () => show(order.length);
        list.append(more);
      }
    };
    show(CHANNELS_SHOWN);
    const heading = element("h3", "", "Each input channel: its window, the kernel (editable), the partial sum");
    const bias = line("bias = ", number(d.bias), "    total = ", number(d.total, "total"), "    (map value ", number(d.value), ")");
    out.push(heading, list, bias);
    return out;
  }

  async edit(layer, d, i, a, b, value) {
    if (!Number.isFinite(value)) return;
    const index = [d.position[0], i, a, b];
    try {
      await this.onEdit(await setWeight(layer.name, index, value));
    } catch {
      // the server's message is on the page
    }
  }

  pool(d) {
    const limit = absMax(d.windows);
    const out = [];
    if (d.kind === "maxpool") {
      out.push(line("max over the window = ", number(d.total, "total")));
      out.push(grid(d.windows, { limit, inside: d.inside, mark: d.argmax }));
    } else {
      out.push(line(`sum of the window / ${d.divisor}${d.count_include_pad ? " (padding counted)" : ""}\n= `,
        number(d.sum), ` / ${d.divisor} = `, number(d.total, "total")));
      out.push(grid(d.windows, { limit, inside: d.inside }));
    }
    out.push(element("div", "muted", `window ${d.geometry.kernel.join("×")}, stride ${d.geometry.stride.join(",")}, from input channel ${d.channels[0]}`));
    return out;
  }

  linear(d) {
    const table = element("table", "list");
    const head = element("tr");
    for (const label of ["input index", "input", "weight", "input × weight"]) head.append(element("th", "", label));
    table.append(head);
    for (const c of d.contributions) {
      const tr = element("tr");
      tr.append(element("td", "", String(c.index)));
      for (const v of [c.input, c.weight, c.product]) {
        const td = element("td");
        td.append(number(v));
        tr.append(td);
      }
      table.append(tr);
    }
    return [element("h3", "", "The largest contributions (input × weight)"), table,
      line(`+ ${d.others.count} other products = `, number(d.others.sum), "\n+ bias ", number(d.bias), "\n= ", number(d.total, "total"))];
  }

  softmax(d) {
    const k = d.index;
    const table = element("table", "list");
    const head = element("tr");
    for (const label of ["index", "z", "exp(z − max)"]) head.append(element("th", "", label));
    table.append(head);
    d.logits.forEach((z, i) => {
      const tr = element("tr");
      tr.append(element("td", "", String(i)));
      for (const v of [z, d.exps[i]]) {
        const td = element("td");
        td.append(number(v));
        tr.append(td);
      }
      if (i === k) tr.style.fontWeight = "700";
      table.append(tr);
    });
    return [line("exp(z_k − max z) / Σ_j exp(z_j − max z)\n= ", number(d.exps[k]), " / ", number(d.sum), " = ", number(d.total, "total")), table];
  }

  // The window sliding over one input channel (padding drawn grey), as cnnkit animate draws it.
  animation(d, layer, channel) {
    const g = d.geometry;
    const box = element("div", "anim");
    const [, H, W] = g.input_shape;
    const [, Ho, Wo] = g.output_shape;
    const [top, bottom, left, right] = g.padding;
    const rows = H + top + bottom, cols = W + left + right;
    const cell = Math.max(1, Math.min(18, Math.floor(260 / Math.max(rows, cols))));
    const canvas = element("canvas");
    canvas.width = cols * cell;
    canvas.height = rows * cell;
    canvas.id = "slide";
    const caption = element("div", "muted", `input channel ${channel} with padding; the window moves with stride ${g.stride.join(",")}`);
    const play = element("button", "", "▶ slide the window");
    const side = element("div");
    side.append(caption, play);
    box.append(canvas, side);
    getMaps(layer.name, channel, 1, "input").then(({ data }) => {
      const limit = absMax([Array.from(data)]);
      const context = canvas.getContext("2d");
      const drawAt = (oy, ox) => {
        this.markCell([oy, ox]); // the output cell this window position computes
        context.fillStyle = "#ddd";
        context.fillRect(0, 0, canvas.width, canvas.height);
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            context.fillStyle = cssColour(data[y * W + x], limit);
            context.fillRect((x + left) * cell, (y + top) * cell, cell, cell);
          }
        }
        const y0 = oy * g.stride[0], x0 = ox * g.stride[1];
        context.strokeStyle = "#111";
        context.lineWidth = Math.max(1, cell / 6);
        context.fillStyle = "rgba(255,255,255,0.35)";
        for (let i = 0; i < g.kernel[0]; i++) {
          for (let j = 0; j < g.kernel[1]; j++) {
            const y = y0 + i * g.dilation[0], x = x0 + j * g.dilation[1];
            context.fillRect(x * cell, y * cell, cell, cell);
            if (cell >= 4) context.strokeRect(x * cell, y * cell, cell, cell);
          }
        }
      };
      const [, oy, ox] = d.position;
      drawAt(oy, ox);
      const total = Ho * Wo;
      const step = Math.max(1, Math.ceil(total / ANIMATION_STEPS));
      play.onclick = () => {
        if (this.timer) {
          this.stopAnimation();
          play.textContent = "▶ slide the window";
          drawAt(oy, ox);
          return;
        }
        let position = 0;
        play.textContent = "■ stop";
        this.timer = setInterval(() => {
          drawAt(Math.floor(position / Wo), position % Wo);
          position += step;
          if (position >= total) position = 0;
        }, ANIMATION_MS);
      };
    });
    return box;
  }

  stopAnimation() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
