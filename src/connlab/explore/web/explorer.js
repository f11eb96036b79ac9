// connlab explorer: the lab's exported networks, run by onnxruntime-web inside this one file.
// No network: the runtime module is imported from a blob: URL, its WASM binary is unpacked from
// embedded gzip bytes, and every model is handed over as bytes. The networks themselves are
// never written in JavaScript: this script only prepares inputs (drawing, noise, the schedules'
// numbers), loops over the exported models (ladder chain, DDIM steps, feeding back) and draws.

const manifest = JSON.parse(document.getElementById("manifest").textContent);
const models = manifest.models;
const $ = (id) => document.getElementById(id);
const PIXELS = 28 * 28;

const state = {
  clean: new Float32Array(PIXELS), noisy: new Float32Array(PIXELS), noise: null,
  ae: {}, feed: {}, ladder: null, diffusion: null, vit: null, sequence: null,
  timing: {}, selfTest: null,
};
const explorer = { state, ready: null, busy: 0 };
window.explorer = explorer;

// --- bytes, tensors, the runtime ----------------------------------------------------------------

function b64bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text.trim());  // native where the browser has it
  const raw = atob(text.trim());
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function decodeTensor(t) {
  const bytes = b64bytes(t.data);
  const data = t.type === "int64" ? new BigInt64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  return { type: t.type, dims: t.dims, data };
}

let ort = null;
const sessions = {};
let queue = Promise.resolve();

async function loadRuntime() {
  const url = URL.createObjectURL(new Blob([b64bytes($("ort-mjs").textContent)], { type: "text/javascript" }));
  ort = await import(url);
  ort.env.wasm.numThreads = 1;   // threads need cross-origin isolation, which file:// cannot give
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = await gunzip(b64bytes($("ort-wasm").textContent));
  ort.env.logLevel = "error";
}

function tensor(type, data, dims) {
  return new ort.Tensor(type, data, dims);
}
const f32 = (data, dims) => tensor("float32", Float32Array.from(data), dims);
const i64 = (values) => tensor("int64", BigInt64Array.from(values.map((v) => BigInt(v))), [values.length]);

// The WASM backend runs one session at a time: every call goes through one queue.
function run(name, feeds) {
  const session = sessions[name];
  const own = {};
  for (const k of session.inputNames) own[k] = feeds[k];  // an input the graph dropped (unused) is not fed
  const result = queue.then(() => session.run(own));
  queue = result.catch(() => {});
  return result;
}

// --- self-test: every model on its recorded input, against PyTorch's recorded output ------------

async function selfTest(loadErrors) {
  const report = { models: 0, max_abs_diff: 0, errors: [...loadErrors] };
  for (const [name, m] of Object.entries(models)) {
    if (!sessions[name]) continue;
    try {
      const feeds = {};
      for (const [k, t] of Object.entries(m.inputs)) {
        const d = decodeTensor(t);
        feeds[k] = tensor(d.type, d.data, d.dims);
      }
      const out = await run(name, feeds);
      let worst = 0;
      for (const [k, t] of Object.entries(m.outputs)) {
        const want = decodeTensor(t).data, got = out[k].data;
        if (got.length !== want.length) throw new Error(`output ${k}: ${got.length} values, expected ${want.length}`);
        for (let i = 0; i < want.length; i++) {
          const diff = Math.abs(got[i] - want[i]);
          if (!(diff <= worst)) worst = Number.isNaN(diff) ? Infinity : diff;
        }
      }
      report.models += 1;
      report.max_abs_diff = Math.max(report.max_abs_diff, worst);
      if (!(worst <= 1e-3)) report.errors.push(`${name}: largest difference from PyTorch ${worst} > 1e-3`);
    } catch (err) {
      report.errors.push(`${name}: ${err.message || err}`);
    }
  }
  state.selfTest = report;
  $("self-test").textContent = JSON.stringify(report);
  $("self-test-box").classList.add(report.errors.length ? "bad" : "good");
  return report;
}

// --- pictures and numbers -----------------------------------------------------------------------

function drawGray(canvas, pixels, w = 28, h = 28) {
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, pixels[i])));
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function psnr(a, b) {
  let mse = 0;
  for (let i = 0; i < a.length; i++) mse += (a[i] - b[i]) ** 2;
  return 10 * Math.log10(1 / Math.max(mse / a.length, 1e-10));
}

function describe(pixels) {
  let sum = 0, ink = 0;
  for (const v of pixels) { sum += v; if (v > 0.5) ink += 1; }
  return `mean ${(sum / pixels.length).toFixed(3)}, ${ink} of 784 pixels above 0.5`;
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

// Seeded draws for the page's own noise (mulberry32; normals by Box-Muller).
function rng(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(uniform(), 1e-12), v = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return { uniform, normal, draw: (dist) => (dist === "uniform" ? 2 * uniform() - 1 : normal()) };
}

// --- 1. the drawing and its noise ----------------------------------------------------------------

const canvas = $("draw");
const pen = canvas.getContext("2d", { willReadFrequently: true });

function clearCanvas() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function strokeStyle() {
  pen.strokeStyle = "#fff"; pen.lineWidth = 22; pen.lineCap = "round"; pen.lineJoin = "round";
}

// The 280x280 drawing, averaged over 10x10 blocks: a 28x28 digit in [0, 1] like MNIST's.
function readCanvas() {
  const { data } = pen.getImageData(0, 0, 280, 280);
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
  pen.imageSmoothingEnabled = false;
  pen.drawImage(small, 0, 0, 280, 280);
}

function newNoise() {
  const r = rng(Number($("noise-seed").value) || 0), dist = $("dist").value;
  state.noise = Float32Array.from({ length: PIXELS }, () => r.draw(dist));
}

function inputChanged() {
  state.clean = readCanvas();
  const sigma = Number($("sigma").value);
  for (let i = 0; i < PIXELS; i++) state.noisy[i] = Math.min(1, Math.max(0, state.clean[i] + sigma * state.noise[i]));
  drawGray($("noisy"), state.noisy);
  $("draw-numbers").textContent = `(28×28: ${describe(state.clean)})`;
  $("noisy-numbers").textContent = `(σ ${fmt(sigma)} ${$("dist").value}: ${describe(state.noisy)}; ` +
    `PSNR against your drawing ${fmt(psnr(state.noisy, state.clean))} dB)`;
  state.changedAt = performance.now();
  refresh();
}

function setupDrawing() {
  clearCanvas();
  let last = null, keyPos = { x: 140, y: 140 }, keyPen = true;
  const pos = (e) => {
    const r = canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * canvas.width) / r.width, y: ((e.clientY - r.top) * canvas.height) / r.height };
  };
  const line = (a, b) => {
    strokeStyle();
    pen.beginPath();
    if (a.x === b.x && a.y === b.y) {  // a tap or click: a dot (a zero-length stroke draws nothing)
      pen.fillStyle = "#fff"; pen.arc(a.x, a.y, pen.lineWidth / 2, 0, 2 * Math.PI); pen.fill();
    } else {
      pen.moveTo(a.x, a.y); pen.lineTo(b.x, b.y); pen.stroke();
    }
  };
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault(); canvas.setPointerCapture(e.pointerId); last = pos(e); line(last, last); inputChanged();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = pos(e); line(last, p); last = p; inputChanged();
  });
  const end = () => { if (last) { last = null; inputChanged(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("keydown", (e) => {
    const step = { ArrowLeft: [-10, 0], ArrowRight: [10, 0], ArrowUp: [0, -10], ArrowDown: [0, 10] }[e.key];
    const where = () => { $("draw-pen").textContent = `pen ${keyPen ? "down" : "up"} at column ${Math.floor(keyPos.x / 10) + 1}, row ${Math.floor(keyPos.y / 10) + 1}`; };
    if (e.key === "p" || e.key === "P") { keyPen = !keyPen; e.preventDefault(); where(); return; }
    if (!step) return;
    e.preventDefault();
    const next = { x: Math.min(275, Math.max(5, keyPos.x + step[0])), y: Math.min(275, Math.max(5, keyPos.y + step[1])) };
    if (keyPen) { line(keyPos, next); inputChanged(); }
    keyPos = next;
    where();
  });
  $("clear").addEventListener("click", () => { clearCanvas(); $("digit").value = ""; inputChanged(); });
  const select = $("digit");
  manifest.digits.forEach((d, i) => select.add(new Option(`test digit: a ${d.label}`, String(i))));
  select.addEventListener("change", () => {
    if (select.value === "") return;
    const bytes = b64bytes(manifest.digits[Number(select.value)].pixels);
    showDigit(Float32Array.from(bytes, (v) => v / 255));
    inputChanged();
  });
  $("sigma").addEventListener("input", () => { $("sigma-value").textContent = fmt(Number($("sigma").value)); inputChanged(); });
  $("dist").addEventListener("change", () => { newNoise(); inputChanged(); });
  $("noise-seed").addEventListener("change", () => { newNoise(); inputChanged(); });
  newNoise();
}

// Work triggered by the input runs one pass at a time; changes during a pass start one more.
let running = false, again = false;
async function refresh() {
  if (running) { again = true; return; }
  running = true; explorer.busy += 1;
  try {
    do {
      again = false;
      await updateAutoencoders();
      await updateVit();
      await updateLadder();
    } while (again);
  } catch (err) {
    console.error(err);
  } finally {
    running = false; explorer.busy -= 1;
  }
}
explorer.settled = async () => { while (explorer.busy > 0 || running) await new Promise((r) => setTimeout(r, 5)); };

// --- 2. the three autoencoders -------------------------------------------------------------------

const AE = [["none", "no skip"], ["concat", "concat skips (U-Net)"], ["add", "additive skips"]];

function setupAutoencoders() {
  if (!AE.some(([skip]) => models[`ae_${skip}`])) return;
  const row = $("ae-row");
  for (const [skip, title] of AE) {
    if (!models[`ae_${skip}`]) continue;
    const fig = document.createElement("figure");
    fig.innerHTML = `<canvas id="ae-${skip}" class="pix big" width="28" height="28" role="img" aria-describedby="ae-${skip}-numbers"></canvas>
      <figcaption>${title}<br><span id="ae-${skip}-numbers" class="numbers"></span></figcaption>`;
    if (skip !== "none") {
      for (const [k, label] of [[0, "skip from conv_1 (28×28)"], [1, "skip from conv_2 (14×14)"]]) {
        const box = document.createElement("label");
        box.innerHTML = `<input type="checkbox" id="ae-${skip}-keep${k}" checked> ${label}`;
        box.querySelector("input").addEventListener("change", () => { resetFeed(); refresh(); });
        fig.append(box);
      }
    }
    row.append(fig);
  }
  $("feed-back").addEventListener("click", feedBack);
  $("feed-reset").addEventListener("click", () => { resetFeed(); refresh(); });
}

function keepOf(skip) {
  if (skip === "none") return [1, 1];
  return [0, 1].map((k) => ($(`ae-${skip}-keep${k}`).checked ? 1 : 0));
}

function resetFeed() { state.feed = {}; $("feed-numbers").textContent = ""; }

async function runAutoencoder(skip, input) {
  const out = await run(`ae_${skip}`, { x: f32(input, [1, 1, 28, 28]), keep: f32(keepOf(skip), [2]) });
  return Float32Array.from(out.image.data);
}

async function updateAutoencoders() {
  if (!AE.some(([skip]) => models[`ae_${skip}`])) return;
  resetFeed();
  const t0 = performance.now();
  for (const [skip] of AE) {
    if (!models[`ae_${skip}`]) continue;
    const output = await runAutoencoder(skip, state.noisy);
    state.ae[skip] = { input: Float32Array.from(state.noisy), keep: keepOf(skip), output, psnr: psnr(output, state.clean) };
    drawGray($(`ae-${skip}`), output);
    $(`ae-${skip}-numbers`).textContent = `PSNR ${fmt(state.ae[skip].psnr)} dB against your drawing` +
      ` (input ${fmt(psnr(state.noisy, state.clean))} dB); ${describe(output)}`;
  }
  state.timing.ae_ms = performance.now() - t0;
  if (state.changedAt) state.timing.ae_after_input_ms = performance.now() - state.changedAt;
}

async function feedBack() {
  explorer.busy += 1;
  try {
    const lines = [];
    for (const [skip, title] of AE) {
      const ae = state.ae[skip];
      if (!ae) continue;
      const feed = state.feed[skip] || (state.feed[skip] = { current: ae.output, psnr: [ae.psnr] });
      feed.current = await runAutoencoder(skip, feed.current);
      feed.psnr.push(psnr(feed.current, state.clean));
      drawGray($(`ae-${skip}`), feed.current);
      $(`ae-${skip}-numbers`).textContent = `after ${feed.psnr.length} passes: PSNR ${fmt(feed.psnr.at(-1))} dB`;
      lines.push(`${title}: ${feed.psnr.map((p) => fmt(p)).join(" → ")} dB`);
    }
    $("feed-numbers").textContent = `PSNR after each pass — ${lines.join("; ")}`;
  } finally {
    explorer.busy -= 1;
  }
}

// --- 3. the ladder -------------------------------------------------------------------------------

function setupLadder() {
  const m = models.ladder_step;
  if (!m) return;
  const T = m.info.T;
  $("ladder-step").max = String(T);
  $("ladder-start").add(new Option("your noised input from part 1", "noisy"), 1);
  $("ladder-start").addEventListener("change", () => refresh());
  $("ladder-step").addEventListener("input", showLadder);
}

async function updateLadder() {
  const m = models.ladder_step;
  if (!m) return;
  const { T, a, b, dist, mag, schedule } = m.info;
  const start = $("ladder-start").value;
  let x;
  if (start === "noise") {
    const r = rng(1000 + (Number($("noise-seed").value) || 0));
    x = Float32Array.from({ length: PIXELS }, () => r.uniform());
  } else if (start === "noisy") {
    x = Float32Array.from(state.noisy);
  } else if (schedule === "interpolate") {  // the course's end point: x_T = clip(x_0 + round(mag z))
    const r = rng(2000 + (Number($("noise-seed").value) || 0));
    x = Float32Array.from(state.clean, (v) => Math.min(1, Math.max(0, v + Math.round(mag * r.draw(dist)))));
  } else {  // a walk's own forward process: x_t = clip(a_t x_{t-1} + b_t z_t), t = 1 … T
    const r = rng(2000 + (Number($("noise-seed").value) || 0));
    x = Float32Array.from(state.clean);
    for (let t = 1; t <= T; t++) {
      for (let i = 0; i < PIXELS; i++) x[i] = Math.min(1, Math.max(0, a[t] * x[i] + b[t] * r.draw(dist)));
    }
  }
  const chain = [x];
  for (let t = T; t >= 1; t--) {
    const out = await run("ladder_step", { x: f32(chain.at(-1), [1, 1, 28, 28]), t: i64([t]) });
    chain.push(Float32Array.from(out.x_prev.data));
  }
  state.ladder = { chain, psnr: chain.map((c) => psnr(c, state.clean)), start };
  const strip = $("ladder-strip");
  strip.replaceChildren(...chain.map((c) => { const cv = document.createElement("canvas"); cv.className = "pix"; drawGray(cv, c); return cv; }));
  showLadder();
}

function showLadder() {
  const L = state.ladder;
  if (!L) return;
  const T = L.chain.length - 1, k = Math.min(Number($("ladder-step").value), T);
  drawGray($("ladder-view"), L.chain[k]);
  const name = k === 0 ? `x_${T} (start)` : `x̂_${T - k} after ${k} of ${T} steps`;
  $("ladder-step-value").textContent = name;
  $("ladder-caption").textContent = name;
  $("ladder-numbers").textContent = `${name}: PSNR ${fmt(L.psnr[k])} dB against your drawing; ${describe(L.chain[k])}. ` +
    `Along the chain: ${L.psnr.map((p) => fmt(p, 1)).join(", ")} dB`;
}

// --- 4. diffusion (DDIM) -------------------------------------------------------------------------

function setupDiffusion() {
  const m = models.ddim_step;
  if (!m) return;
  const { T, class_cond, guidance } = m.info;
  const steps = $("ddim-steps");
  steps.max = String(Math.min(100, T)); steps.min = String(Math.min(5, T));
  steps.value = String(Math.min(20, T));
  $("ddim-steps-value").textContent = steps.value;
  steps.addEventListener("input", () => { $("ddim-steps-value").textContent = steps.value; });
  const cls = $("ddim-class");
  if (class_cond) {
    for (let c = 0; c < 10; c++) cls.add(new Option(`a ${c}`, String(c)));
    cls.add(new Option("∅ any digit (no label)", "10"));
    $("ddim-w").value = String(guidance ?? 0);
  } else {
    cls.add(new Option("unconditional run: no classes", "-1"));
    cls.disabled = true; $("ddim-w").disabled = true;
  }
  $("ddim-run").addEventListener("click", () => generate());
  $("ddim-scrub").addEventListener("input", showDiffusion);
}

// The DDIM sub-sequence of samplers.ddim_timesteps: arange(K) * (T // K), largest first.
const ddimTimesteps = (T, K) => Array.from({ length: K }, (_, i) => (K - 1 - i) * Math.floor(T / K));

function gaussian(seed, n) {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

async function toImage(z) {
  const { shape } = models.ddim_step.info;
  const out = await run("to_image", { z: f32(z, [1, ...shape]) });
  return Float32Array.from(out.image.data);
}

async function generate(options = {}) {
  const m = models.ddim_step;
  const { T, shape, class_cond } = m.info;
  const K = options.steps ?? Number($("ddim-steps").value);
  const label = options.label ?? Number($("ddim-class").value);
  const w = options.w ?? Number($("ddim-w").value);
  const seed = options.seed ?? Number($("ddim-seed").value);
  explorer.busy += 1;
  try {
    const t0 = performance.now();
    const n = shape.reduce((p, q) => p * q, 1), ts = ddimTimesteps(T, K);
    const states = [gaussian(seed, n)], x0s = [];
    for (let i = 0; i < ts.length; i++) {
      const feeds = { x: f32(states.at(-1), [1, ...shape]), t: i64([ts[i]]), t_prev: i64([i + 1 < ts.length ? ts[i + 1] : -1]) };
      if (class_cond) Object.assign(feeds, { y: i64([label]), w: f32([w], [1]) });
      const out = await run("ddim_step", feeds);
      states.push(Float32Array.from(out.x_prev.data));
      x0s.push(Float32Array.from(out.x0_hat.data));
    }
    const image = await toImage(states.at(-1));
    state.timing.ddim_ms = performance.now() - t0;
    state.diffusion = { steps: K, label, w, seed, ts, states, x0s, image, decoded: {} };
    $("ddim-scrub").max = String(K); $("ddim-scrub").value = String(K);
    await showDiffusion();
    return image;
  } finally {
    explorer.busy -= 1;
  }
}
explorer.generate = generate;

async function showDiffusion() {
  const D = state.diffusion;
  if (!D) return;
  const k = Number($("ddim-scrub").value), K = D.steps;
  const { shape, alpha_bar, space } = models.ddim_step.info;
  const key = String(k);
  if (!D.decoded[key]) {
    const xt = k === K ? D.image : await toImage(D.states[k]);
    const x0 = await toImage(D.x0s[Math.min(k, K - 1)]);
    D.decoded[key] = { xt, x0 };
  }
  drawGray($("ddim-xt"), D.decoded[key].xt);
  drawGray($("ddim-x0"), D.decoded[key].x0);
  // the sampler's state itself: one tile per channel, values −3 … 3 mapped to black … white
  const [C, H, W] = shape, z = D.states[k], tiles = new Float32Array(C * (W + 1) * H);
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    tiles[y * C * (W + 1) + c * (W + 1) + x] = (z[c * H * W + y * W + x] + 3) / 6;
  }
  drawGray($("ddim-latent"), tiles, C * (W + 1), H);
  $("ddim-latent-caption").textContent = space === "latent" ? `the latent x_t: ${C} channels of ${H}×${W}` : "x_t in pixels";
  const t = k < K ? D.ts[k] : -1;
  let s = 0;
  for (const v of z) s += v * v;
  const label = D.label === 10 ? "∅" : D.label;
  $("ddim-scrub-value").textContent = k < K ? `step ${k} of ${K}, t = ${t}` : `done (${K} steps)`;
  $("ddim-numbers").textContent = `DDIM-${K}, class ${label}, w ${fmt(D.w, 1)}, seed ${D.seed}; ` +
    (k < K ? `step ${k}: t = ${t}, ᾱ_t = ${fmt(alpha_bar[t], 4)}` : "x_0") +
    `, state RMS ${fmt(Math.sqrt(s / z.length), 3)}; x̂₀ image: ${describe(D.decoded[key].x0)}; ` +
    `${fmt(state.timing.ddim_ms, 0)} ms for the chain`;
}

// --- 5. the ViT -------------------------------------------------------------------------------------

function setupVit() {
  const m = models.vit;
  if (!m) return;
  const sel = $("vit-map");
  sel.add(new Option("attention rollout (all layers)", "rollout"));
  for (let l = 0; l < m.info.depth; l++) for (let h = 0; h < m.info.heads; h++) sel.add(new Option(`layer ${l + 1}, head ${h + 1}`, `${l},${h}`));
  sel.addEventListener("change", showVit);
}

async function updateVit() {
  if (!models.vit) return;
  const out = await run("vit", { x: f32(state.clean, [1, 1, 28, 28]) });
  state.vit = { probs: Float32Array.from(out.probs.data), attention: out.attention, rollout: out.rollout };
  showVit();
}

// How much the pooled output reads each patch (models.vit.patch_relevance): the class token's row
// without its own column, or the mean over rows with mean pooling.
function relevance(matrix, T, cls) {
  const rel = [];
  if (cls) for (let j = 1; j < T; j++) rel.push(matrix[j]);
  else for (let j = 0; j < T; j++) { let s = 0; for (let i = 0; i < T; i++) s += matrix[i * T + j]; rel.push(s / T); }
  return rel;
}

function showVit() {
  const V = state.vit;
  if (!V) return;
  const { grid, heads, cls } = models.vit.info;
  const choice = $("vit-map").value;
  let matrix, T;
  if (choice === "rollout") {
    T = V.rollout.dims[2]; matrix = V.rollout.data;
  } else {
    const [l, h] = choice.split(",").map(Number);
    T = V.attention.dims[4];
    const offset = (l * heads + h) * T * T;  // attention (L, 1, heads, T, T)
    matrix = V.attention.data.subarray(offset, offset + T * T);
  }
  // shown relative to the least and most attended patch, so a nearly uniform map still has a shape
  const rel = relevance(matrix, T, cls), low = Math.min(...rel), span = Math.max(Math.max(...rel) - low, 1e-12);
  const cell = 28 / grid;
  const cv = $("vit-view"); cv.width = 28; cv.height = 28;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(28, 28);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
    const d = state.clean[y * 28 + x], r = (rel[Math.floor(y / cell) * grid + Math.floor(x / cell)] - low) / span, i = 4 * (y * 28 + x);
    img.data[i] = 255 * Math.max(d, r); img.data[i + 1] = img.data[i + 2] = 255 * d * (1 - 0.7 * r); img.data[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const probs = Array.from(V.probs), best = probs.indexOf(Math.max(...probs));
  $("vit-probs").replaceChildren(...probs.map((p, c) => {
    const row = document.createElement("div");
    row.className = "bar" + (c === best ? " best" : "");
    row.innerHTML = `<span>${c}</span><span class="fill" style="width:${(100 * p).toFixed(1)}%"></span><span>${(100 * p).toFixed(1)} %</span>`;
    return row;
  }));
  const order = rel.map((v, j) => [v, j]).sort((p, q) => q[0] - p[0]).slice(0, 3);
  $("vit-numbers").textContent = `The ViT reads a ${best} (${(100 * probs[best]).toFixed(1)} %). Most attended patches ` +
    `(row, column of the ${grid}×${grid} grid): ` + order.map(([v, j]) => `(${Math.floor(j / grid) + 1}, ${(j % grid) + 1}) ${fmt(v, 3)}`).join(", ");
}

// --- 6. attention as a softmax gate ---------------------------------------------------------------

function setupSequence() {
  const m = models.sequence;
  if (!m) return;
  const { length, depth, heads, vocab, task } = m.info;
  const input = $("seq-input");
  input.value = "31415926535897932384".slice(0, length).padEnd(length, "0");
  input.maxLength = length;
  input.setAttribute("aria-describedby", "seq-output");
  input.previousSibling.textContent = `your sequence: ${length} digits 0–${vocab - 1} (task: ${task}) `;
  const sel = $("seq-map");
  for (let l = 0; l < depth; l++) for (let h = 0; h < heads; h++) sel.add(new Option(`layer ${l + 1}, head ${h + 1}`, `${l},${h}`));
  input.addEventListener("input", updateSequence);
  sel.addEventListener("change", showSequence);
}

async function updateSequence() {
  const { length, vocab, task } = models.sequence.info;
  const text = $("seq-input").value.trim();
  const digits = Array.from(text, Number);
  if (digits.length !== length || digits.some((d) => !(Number.isInteger(d) && d >= 0 && d < vocab))) {
    $("seq-output").textContent = `type exactly ${length} digits 0–${vocab - 1}; "${text}" is not`;
    return;
  }
  explorer.busy += 1;
  try {
    const out = await run("sequence", { tokens: tensor("int64", BigInt64Array.from(digits.map(BigInt)), [1, length]) });
    const probs = out.probs.data, V = vocab, answer = [];
    for (let i = 0; i < length; i++) {
      const row = Array.from(probs.subarray(i * V, (i + 1) * V));
      answer.push(row.indexOf(Math.max(...row)));
    }
    const expected = task === "reverse" ? [...digits].reverse() : [...digits].sort((p, q) => p - q);
    state.sequence = { digits, answer, expected, attention: out.attention };
    const right = answer.filter((d, i) => d === expected[i]).length;
    $("seq-output").textContent = `input ${digits.join(" ")} → network ${answer.join(" ")}; ${task} is ${expected.join(" ")} ` +
      `(${right} of ${length} right)`;
    showSequence();
  } finally {
    explorer.busy -= 1;
  }
}

function showSequence() {
  const S = state.sequence;
  if (!S) return;
  const { length: L, heads } = models.sequence.info;
  const [l, h] = $("seq-map").value.split(",").map(Number);
  const offset = (l * heads + h) * L * L;  // attention (depth, 1, heads, L, L)
  const w = S.attention.data.subarray(offset, offset + L * L);
  const table = document.createElement("table");
  table.innerHTML = `<caption>softmax gate of layer ${l + 1}, head ${h + 1}: row = output position (query), ` +
    `column = input position (key); each row sums to 1</caption>`;
  const head = table.insertRow();
  head.append(Object.assign(document.createElement("th"), { textContent: "out \\ in" }));
  for (let j = 0; j < L; j++) head.append(Object.assign(document.createElement("th"), { scope: "col", textContent: `${j + 1}: ${S.digits[j]}` }));
  for (let i = 0; i < L; i++) {
    const row = table.insertRow();
    row.append(Object.assign(document.createElement("th"), { scope: "row", textContent: `${i + 1}: ${S.answer[i]}` }));
    for (let j = 0; j < L; j++) {
      const cell = row.insertCell(), v = w[i * L + j];
      cell.textContent = v.toFixed(2);
      cell.style.background = `rgba(200, 40, 40, ${v.toFixed(3)})`;
      if (v > 0.5) cell.style.color = "#fff";
    }
  }
  $("seq-table").replaceChildren(table);
}

// --- parts left out, start-up ---------------------------------------------------------------------

const SECTIONS = { autoencoder: "ae-part", ladder: "ladder-part", diffusion: "diffusion-part", vit: "vit-part", attention: "attention-part" };

function showLeftOut() {
  for (const p of manifest.left_out) {
    const li = document.createElement("li");
    li.textContent = `Left out: ${p.title} — ${p.why}. Make it with: ${p.command}`;
    $("left-out").append(li);
    const section = $(SECTIONS[p.part]);
    const note = document.createElement("p");
    note.className = "left-out";
    note.textContent = li.textContent;
    section.replaceChildren(section.querySelector("h2"), note);
  }
}

async function start() {
  const t0 = performance.now();
  state.timing.script_start_ms = t0;
  showLeftOut();
  const loadErrors = [];
  await loadRuntime();
  state.timing.runtime_ms = performance.now() - t0;
  for (const [name, m] of Object.entries(models)) {
    try {
      // The exporter already folded constants and removed dead nodes (onnxscript's optimizer); the
      // runtime's own graph rewrites at creation cost more start-up than they save on these small
      // networks (benchmarks/RESULTS.md, "explorer"), so they are off.
      sessions[name] = await ort.InferenceSession.create(b64bytes(m.onnx),
        { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
    } catch (err) {
      loadErrors.push(`${name}: could not load (${err.message || err})`);
    }
  }
  state.timing.sessions_ms = performance.now() - t0 - state.timing.runtime_ms;
  const report = await selfTest(loadErrors);
  // a model that did not load takes its panel (and the panel's other models) with it
  const failed = Object.entries(models).filter(([name]) => !sessions[name]);
  for (const [name, m] of failed) {
    const section = $(SECTIONS[m.part]), note = document.createElement("p");
    note.className = "left-out";
    note.textContent = `Left out: ${name} could not be loaded (${report.errors.find((e) => e.startsWith(name)) || "see the self-test"}).`;
    section.replaceChildren(section.querySelector("h2"), note);
  }
  const lost = new Set(failed.map(([, m]) => m.part));
  for (const [name, m] of Object.entries(models)) if (lost.has(m.part)) delete models[name];
  state.timing.ready_ms = performance.now();   // since the page started loading
  state.timing.startup_ms = performance.now() - t0;
  $("status").textContent = `ready: ${Object.keys(sessions).length} models in ${fmt(state.timing.ready_ms / 1000, 2)} s` +
    (manifest.export_errors.length ? `; not exported: ${manifest.export_errors.join("; ")}` : "");
  setupDrawing(); setupAutoencoders(); setupLadder(); setupDiffusion(); setupVit(); setupSequence();
  $("digit").value = "0";
  $("digit").dispatchEvent(new Event("change"));
  if (models.sequence) await updateSequence();
  if (models.ddim_step) await generate();
  await explorer.settled();
  document.body.dataset.ready = "true";
  return report;
}

explorer.ready = start().catch((err) => {
  $("self-test").textContent = JSON.stringify({ models: 0, max_abs_diff: null, errors: [String(err.message || err)] });
  $("status").textContent = `the page could not start: ${err.message || err}`;
  throw err;
});
