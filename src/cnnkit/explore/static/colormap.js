// Colours: a diverging map (blue below zero, white at zero, red above) for feature maps,
// one symmetric scale per layer, and a warm map for overlays.

const DIVERGING = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
  [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

// RGB of value v on the scale [-limit, limit].
export function diverging(v, limit) {
  const t = limit > 0 ? Math.max(-1, Math.min(1, v / limit)) : 0;
  const position = (t + 1) / 2 * (DIVERGING.length - 1);
  const i = Math.min(DIVERGING.length - 2, Math.floor(position));
  const f = position - i;
  const a = DIVERGING[i], b = DIVERGING[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

export function cssColour(v, limit) {
  const [r, g, b] = diverging(v, limit);
  return `rgb(${r | 0},${g | 0},${b | 0})`;
}

// Text colour readable on cssColour(v, limit).
export function inkOn(v, limit) {
  return limit > 0 && Math.abs(v) / limit > 0.6 ? "#fff" : "#111";
}

// The diverging map sampled at LUT_SIZE points, as packed RGBA pixels, for fast painting.
const LUT_SIZE = 1024;
const LUT = new Uint32Array(LUT_SIZE);
new Uint8ClampedArray(LUT.buffer).forEach((_, i, bytes) => {
  if (i % 4 === 0) {
    const [r, g, b] = diverging((i / 4 / (LUT_SIZE - 1)) * 2 - 1, 1);
    bytes.set([r, g, b, 255], i);
  }
});

// Paint an h x w plane (Float32Array, row-major, from offset) onto canvas at one pixel per value.
export function paintPlane(canvas, data, offset, h, w, limit) {
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext("2d");
  const image = context.createImageData(w, h);
  const pixels = new Uint32Array(image.data.buffer);
  const scale = limit > 0 ? (LUT_SIZE - 1) / (2 * limit) : 0;
  for (let i = 0; i < h * w; i++) {
    const index = Math.round((data[offset + i] + limit) * scale);
    pixels[i] = LUT[index < 0 ? 0 : index >= LUT_SIZE ? LUT_SIZE - 1 : index];
  }
  context.putImageData(image, 0, 0);
}

// A labelled colour bar for the scale [-limit, limit].
export function scaleBar(limit, min, max) {
  const box = document.createElement("span");
  box.className = "scale";
  const bar = document.createElement("canvas");
  bar.width = 120;
  bar.height = 1;
  const context = bar.getContext("2d");
  for (let x = 0; x < 120; x++) {
    context.fillStyle = cssColour((x / 119 * 2 - 1) * limit, limit);
    context.fillRect(x, 0, 1, 1);
  }
  const low = document.createElement("span");
  low.textContent = format(-limit);
  const high = document.createElement("span");
  high.textContent = format(limit);
  const range = document.createElement("span");
  range.className = "muted";
  range.textContent = `(min ${format(min)}, max ${format(max)})`;
  box.append(low, bar, high, range);
  box.title = "colour scale of this layer: blue negative, white zero, red positive";
  return box;
}

// Overlay colour for v in [0, 1]: transparent to opaque yellow-red.
export function heat(v) {
  const t = Math.max(0, Math.min(1, v));
  return [255, Math.round(255 * (1 - t) * 0.9 + 20), 0, Math.round(170 * t)];
}

export function format(v, digits = 4) {
  if (v === null || v === undefined) return "";
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const magnitude = Math.abs(v);
  if (magnitude >= 1e5 || magnitude < 1e-3) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}
