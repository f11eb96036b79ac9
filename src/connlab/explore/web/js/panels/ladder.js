// 3. The ladder (Exercise 2): T small denoising steps, x_T → x̂_{T−1} → … → x̂_0, one network call each.

import { $, PIXELS, models, state } from "../page.js";
import { describe, drawGray, fmt, psnr, rng } from "../draw.js";
import { f32, i64, run } from "../runtime.js";
import { refresh, superseded } from "../refresh.js";
import { seedOf } from "../input.js";
import { modelOf, settingOf, settingSwitch } from "../settings.js";

function setup() {
  $("ladder-start").add(new Option("your noised input from part 1", "noisy"), 1);
  $("ladder-start").addEventListener("change", () => refresh());
  $("ladder-step").addEventListener("input", show);
  settingSwitch("ladder", "ladder-setting", () => { state.ladder = null; configure(); refresh(); });
  configure();
}

// The shown setting's T on the step slider, and what its network was trained on.
function configure() {
  const { T, schedule, mag, dist, bottleneck } = models[modelOf("ladder", "ladder_step")].info;
  $("ladder-step").max = String(T);
  $("ladder-setting").textContent = `${settingOf("ladder") === "course" ? "The course's diffusion notebook" :
    "The lab's setting"}: T = ${T} rungs (${schedule}, ${dist} noise of magnitude ${fmt(mag)}), ` +
    `${bottleneck ? `a ${bottleneck}-filter bottleneck at 7×7` : "no bottleneck"}.`;
}

// The start x_T of the chosen kind. From your digit, the run's own forward process (the exported
// ladder_up) climbs the ladder with noise drawn here; the page does none of the ladder's arithmetic.
async function start(kind) {
  const up = modelOf("ladder", "ladder_up"), { T, dist } = models[up].info;
  const seed = seedOf("noise-seed") ?? 0;
  if (kind === "noise") {  // Exercise 2's start: U(0, 1) pixels
    const r = rng(1000 + seed);
    return Float32Array.from({ length: PIXELS }, () => r.uniform());
  }
  if (kind === "noisy") return Float32Array.from(state.noisy);
  const r = rng(2000 + seed);
  const z = Float32Array.from({ length: T * PIXELS }, () => r.draw(dist));
  const out = await run(up, { x0: f32(state.clean, [1, 1, 28, 28]), z: f32(z, [T, 1, 1, 28, 28]) });
  return Float32Array.from(out.x_T.data);
}

async function update() {
  const name = modelOf("ladder", "ladder_step"), { T } = models[name].info;  // one setting for the whole chain
  const kind = $("ladder-start").value;
  const chain = [await start(kind)];
  for (let t = T; t >= 1; t--) {
    if (superseded()) return;  // the drawing changed: this chain is out of date before it is shown
    const out = await run(name, { x: f32(chain.at(-1), [1, 1, 28, 28]), t: i64([t]) });
    chain.push(Float32Array.from(out.x_prev.data));
  }
  state.ladder = { model: name, chain, psnr: chain.map((c) => psnr(c, state.clean)), start: kind };
  $("ladder-strip").replaceChildren(...chain.map((c, k) => {
    const cv = document.createElement("canvas");
    cv.className = "pix"; cv.setAttribute("role", "img"); cv.setAttribute("aria-label", stepName(k, T));
    drawGray(cv, c);
    return cv;
  }));
  show();
}

const stepName = (k, T) => (k === 0 ? `x_${T} (start)` : `x̂_${T - k} after ${k} of ${T} steps`);

function show() {
  const L = state.ladder;
  if (!L) return;
  const T = L.chain.length - 1, k = Math.min(Number($("ladder-step").value), T), name = stepName(k, T);
  drawGray($("ladder-view"), L.chain[k]);
  $("ladder-step-value").textContent = name;
  $("ladder-caption").textContent = name;
  // from pure noise there is no drawing behind the chain: a PSNR against the canvas would measure nothing
  $("ladder-numbers").textContent = L.start === "noise"
    ? `${name}: ${describe(L.chain[k])}. Started from pure noise, so there is nothing to compare it with: ` +
      "the chain makes a digit-like shape of its own."
    : `${name}: PSNR ${fmt(L.psnr[k])} dB against your drawing; ${describe(L.chain[k])}. ` +
      `Along the chain: ${L.psnr.map((p) => fmt(p, 1)).join(", ")} dB`;
}

export const panel = { setup, onInput: update };
