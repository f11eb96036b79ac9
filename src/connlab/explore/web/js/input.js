// 1. Your digit: the drawing canvas (mouse, touch, pen or keyboard), the test digits, the noise.

import { $, PIXELS, manifest, state } from "./page.js";
import { describe, drawGray, fmt, psnr, rng } from "./draw.js";
import { refresh } from "./refresh.js";
import { b64bytes } from "./runtime.js";

const canvas = () => $("draw");
const pen = () => canvas().getContext("2d", { willReadFrequently: true });

function clearCanvas() {
  const ctx = pen();
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas().width, canvas().height);
}

// The 280x280 drawing, averaged over 10x10 blocks: a 28x28 digit in [0, 1] like MNIST's.
function readCanvas() {
  const { data } = pen().getImageData(0, 0, 280, 280);
  const out = new Float32Array(PIXELS);
  for (let y = 0; y < 280; y++) {
    for (let x = 0; x < 280; x++) out[Math.floor(y / 10) * 28 + Math.floor(x / 10)] += data[4 * (y * 280 + x)];
  }
  for (let i = 0; i < PIXELS; i++) out[i] /= 255 * 100;
  return out;
}

function showDigit(pixels) {
  const small = document.createElement("canvas");
  drawGray(small, pixels);
  const ctx = pen();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, 280, 280);
}

// The seed as the user typed it: a whole number, or null.
export function seedOf(id) {
  const text = $(id).value.trim();
  return /^\d+$/.test(text) ? Number(text) : null;
}

// A new draw for a valid seed; a seed that is not a whole number is said, and the noise stays as it was.
function newNoise() {
  const seed = seedOf("noise-seed"), dist = $("dist").value;
  $("noise-seed").setAttribute("aria-invalid", String(seed === null));
  $("input-error").textContent = seed === null
    ? `the noise seed must be a whole number; "${$("noise-seed").value}" is not, so the noise is unchanged` : "";
  if (seed === null && state.noise) return;
  const r = rng(seed ?? 0);
  state.noise = Float32Array.from({ length: PIXELS }, () => r.draw(dist));
}

// Whether the canvas holds no drawing (every pixel below 0.05): no network is asked to guess at it.
export function isEmpty() {
  return !state.clean.some((v) => v >= 0.05);
}

// `event` is the input that changed the drawing: its timeStamp (when the browser received it) starts the
// "after input" timing, which ends when the autoencoders' outputs are painted.
function inputChanged(event) {
  state.inputAt = event?.timeStamp ?? performance.now();
  state.clean = readCanvas();
  const sigma = Number($("sigma").value);
  for (let i = 0; i < PIXELS; i++) state.noisy[i] = Math.min(1, Math.max(0, state.clean[i] + sigma * state.noise[i]));
  drawGray($("noisy"), state.noisy);
  $("draw-numbers").textContent = `(28×28: ${describe(state.clean)})`;
  $("noisy-numbers").textContent = `(σ ${fmt(sigma)} ${$("dist").value}: ${describe(state.noisy)}; ` +
    `PSNR against your drawing ${fmt(psnr(state.noisy, state.clean))} dB)`;
  refresh();
}

function setupPointer() {
  let last = null;
  const pos = (e) => {
    const r = canvas().getBoundingClientRect();
    return { x: ((e.clientX - r.left) * canvas().width) / r.width, y: ((e.clientY - r.top) * canvas().height) / r.height };
  };
  canvas().addEventListener("pointerdown", (e) => {
    e.preventDefault(); canvas().setPointerCapture(e.pointerId); last = pos(e); line(last, last); inputChanged(e);
  });
  canvas().addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = pos(e); line(last, p); last = p; inputChanged(e);
  });
  const end = () => { last = null; };  // lifting the pen changes no pixel
  canvas().addEventListener("pointerup", end);
  canvas().addEventListener("pointercancel", end);
}

function line(a, b) {
  const ctx = pen();
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath();
  if (a.x === b.x && a.y === b.y) {  // a tap or click: a dot (a zero-length stroke draws nothing)
    ctx.fillStyle = "#fff"; ctx.arc(a.x, a.y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
  } else {
    ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
  }
}

function setupKeyboard() {
  let keyPos = { x: 140, y: 140 }, keyPen = true;
  canvas().addEventListener("keydown", (e) => {
    const step = { ArrowLeft: [-10, 0], ArrowRight: [10, 0], ArrowUp: [0, -10], ArrowDown: [0, 10] }[e.key];
    const where = () => { $("draw-pen").textContent = `pen ${keyPen ? "down" : "up"} at column ${Math.floor(keyPos.x / 10) + 1}, row ${Math.floor(keyPos.y / 10) + 1}`; };
    if (e.key === "p" || e.key === "P") { keyPen = !keyPen; e.preventDefault(); where(); return; }
    if (!step) return;
    e.preventDefault();
    const next = { x: Math.min(275, Math.max(5, keyPos.x + step[0])), y: Math.min(275, Math.max(5, keyPos.y + step[1])) };
    if (keyPen) { line(keyPos, next); inputChanged(e); }
    keyPos = next;
    where();
  });
}

export function setupDrawing() {
  clearCanvas();
  setupPointer();
  setupKeyboard();
  $("clear").addEventListener("click", (e) => { clearCanvas(); $("digit").value = ""; inputChanged(e); });
  const select = $("digit");
  manifest.digits.forEach((d, i) => select.add(new Option(`test digit: a ${d.label}`, String(i))));
  select.addEventListener("change", () => {
    if (select.value === "") return;
    const bytes = b64bytes(manifest.digits[Number(select.value)].pixels);
    showDigit(Float32Array.from(bytes, (v) => v / 255));
    inputChanged();
  });
  $("sigma").addEventListener("input", (e) => { $("sigma-value").textContent = fmt(Number($("sigma").value)); inputChanged(e); });
  $("dist").addEventListener("change", (e) => { newNoise(); inputChanged(e); });
  $("noise-seed").addEventListener("input", (e) => { newNoise(); inputChanged(e); });
  newNoise();
}

export function showTestDigit(index) {
  $("digit").value = String(index);
  $("digit").dispatchEvent(new Event("change"));
}
