// 4. Diffusion, live: DDIM (Song et al. 2021) over the U-Net trained as a DDPM (Ho et al. 2020).
// The step rule is the exported model (export.DDIMStep); the time steps τ and ᾱ_t are the lab's
// own numbers from the manifest (diffusion.samplers.ddim_timesteps), never recomputed here.

import { $, busy, explorer, models, painted, state } from "../page.js";
import { describe, drawGray, fmt, rng } from "../draw.js";
import { f32, i64, run } from "../runtime.js";

const NO_LABEL = 10;   // the class id of ∅ (diffusion.guided: the label dropped in training)
const W_MAX = 10;

function setup() {
  const { class_cond, guidance, steps: range } = models.ddim_step.info;
  const steps = $("ddim-steps");
  steps.min = String(range.min); steps.max = String(range.max); steps.value = String(range.default);
  $("ddim-steps-value").textContent = steps.value;
  steps.addEventListener("input", () => { $("ddim-steps-value").textContent = steps.value; markStale(); });
  const cls = $("ddim-class");
  if (class_cond) {
    for (let c = 0; c < 10; c++) cls.add(new Option(`a ${c}`, String(c)));
    cls.add(new Option("∅ any digit (no label)", String(NO_LABEL)));
    $("ddim-w").value = String(guidance ?? 0);
  } else {
    cls.add(new Option("unconditional run: no classes", "-1"));
    cls.disabled = true; $("ddim-w").disabled = true;
  }
  cls.addEventListener("change", () => { guidanceApplies(); markStale(); });
  for (const id of ["ddim-w", "ddim-seed"]) {
    $(id).addEventListener("input", () => { settings(); markStale(); });
    $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") generate(); });
  }
  $("ddim-run").addEventListener("click", () => generate());
  $("ddim-scrub").addEventListener("input", show);
}

// w means nothing for ∅: (1 + w) ε(∅) − w ε(∅) = ε(∅).
function guidanceApplies() {
  if (!models.ddim_step.info.class_cond) return;
  $("ddim-w").disabled = Number($("ddim-class").value) === NO_LABEL;
  settings();
}

// The settings as typed, or {error}: w a number in [0, W_MAX] (blank is an error, not 0), the seed a whole number.
function settings() {
  const problems = [];
  const wText = $("ddim-w").value.trim(), seedText = $("ddim-seed").value.trim();
  const w = Number(wText), seed = Number(seedText);
  const wOk = $("ddim-w").disabled || (wText !== "" && Number.isFinite(w) && w >= 0 && w <= W_MAX);
  if (!wOk) problems.push(`guidance w must be a number from 0 to ${W_MAX}; "${wText}" is not`);
  const seedOk = /^\d+$/.test(seedText) && seed <= 2 ** 32 - 1;
  if (!seedOk) problems.push(`the seed must be a whole number from 0 to ${2 ** 32 - 1}; "${seedText}" is not`);
  $("ddim-w").setAttribute("aria-invalid", String(!wOk));
  $("ddim-seed").setAttribute("aria-invalid", String(!seedOk));
  $("ddim-error").textContent = problems.join("; ");
  $("ddim-run").disabled = problems.length > 0;
  if (problems.length) return { error: problems.join("; ") };
  const label = Number($("ddim-class").value);
  return { steps: Number($("ddim-steps").value), label, w: $("ddim-w").disabled ? 0 : w, seed };
}

const describeRun = (s) => `DDIM-${s.steps}, class ${s.label === NO_LABEL ? "∅" : s.label < 0 ? "none" : s.label}` +
  `, w ${fmt(s.w, 1)}, seed ${s.seed}`;

// The pictures belong to the last Generate: once a setting differs, they say so until the next one.
function markStale() {
  const D = state.diffusion;
  if (!D) return;
  const now = settings();
  const same = !now.error && ["steps", "label", "w", "seed"].every((k) => now[k] === D[k]);
  $("ddim-row").classList.toggle("stale-result", !same);
  $("ddim-stale").textContent = same ? "" : `Stale: the pictures show ${describeRun(D)}; ` +
    (now.error ? "fix the settings, then press Generate." : `press Generate for ${describeRun(now)}.`);
}

function gaussian(seed, n) {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}

async function toImage(z) {
  const { shape } = models.ddim_step.info;
  const out = await run("to_image", { z: f32(z, [1, ...shape]) });
  return Float32Array.from(out.image.data);
}

// DDIM-K from the seed's x_T; `options` (steps, label, w, seed) stand in for the controls (benchmarks).
function generate(options = {}) {
  const typed = settings();
  if (typed.error && !Object.keys(options).length) return Promise.resolve(null);
  const { steps: K, label, w, seed } = { ...typed, ...options };
  const { shape, class_cond, timesteps } = models.ddim_step.info;
  return busy(async () => {
    const t0 = performance.now();
    const n = shape.reduce((p, q) => p * q, 1), ts = timesteps[String(K)];
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
    state.diffusion = { steps: K, label: class_cond ? label : -1, w: class_cond ? w : 0, seed, ts, states, x0s, image, decoded: {} };
    $("ddim-scrub").max = String(K); $("ddim-scrub").value = String(K);
    await show();
    markStale();
    state.timing.ddim_painted_ms = (await painted()) - t0;  // DDIM-K to its picture on screen
    return image;
  });
}
explorer.generate = generate;

async function show() {
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
  const t = k < K ? D.ts[k] : -1, at = k < K ? `t = ${t}` : "the end (x_0)";
  $("ddim-xt-caption").textContent = `x_t at ${at}, decoded` + (space === "latent" ? " by the latent decoder" : "");
  $("ddim-x0-caption").textContent = `predicted x̂₀ at ${at}, decoded`;
  $("ddim-latent-caption").textContent = (space === "latent" ? `the latent x_t itself: ${C} channels of ${H}×${W}` :
    "x_t itself, in pixels") + "; black −3 … white +3";
  let s = 0;
  for (const v of z) s += v * v;
  $("ddim-scrub-value").textContent = k < K ? `step ${k} of ${K}, t = ${t}` : `done (${K} steps)`;
  $("ddim-numbers").textContent = `${describeRun(D)}; ` +
    (k < K ? `step ${k}: t = ${t}, ᾱ_t = ${fmt(alpha_bar[t], 4)}` : "x_0") +
    `, state RMS ${fmt(Math.sqrt(s / z.length), 3)}; x̂₀ image: ${describe(D.decoded[key].x0)}; ` +
    `${fmt(state.timing.ddim_ms, 0)} ms for the chain`;
}

export const panel = { setup, start: () => { guidanceApplies(); return generate(); } };
