// 4. Diffusion, live: DDIM (Song et al. 2021) over the U-Net trained as a DDPM (Ho et al. 2020).
// The step rule is the exported model (export.DDIMStep); the time steps τ and ᾱ_t are the lab's
// own numbers from the manifest (diffusion.samplers.ddim_timesteps), never recomputed here.

import { $, busy, explorer, models, state } from "../page.js";
import { describe, drawGray, fmt, rng } from "../draw.js";
import { f32, i64, run } from "../runtime.js";

function setup() {
  const { class_cond, guidance, steps: range } = models.ddim_step.info;
  const steps = $("ddim-steps");
  steps.min = String(range.min); steps.max = String(range.max); steps.value = String(range.default);
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
  $("ddim-scrub").addEventListener("input", show);
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

function generate(options = {}) {
  const { shape, class_cond, timesteps } = models.ddim_step.info;
  const K = options.steps ?? Number($("ddim-steps").value);
  const label = options.label ?? Number($("ddim-class").value);
  const w = options.w ?? Number($("ddim-w").value);
  const seed = options.seed ?? Number($("ddim-seed").value);
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
    state.diffusion = { steps: K, label, w, seed, ts, states, x0s, image, decoded: {} };
    $("ddim-scrub").max = String(K); $("ddim-scrub").value = String(K);
    await show();
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

export const panel = { setup, start: () => generate() };
