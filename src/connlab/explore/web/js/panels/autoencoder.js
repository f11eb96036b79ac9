// 2. The lecture's three autoencoders (Exercise 1): no skip, concatenated skips (U-Net), added skips.

import { $, busy, models, painted, state } from "../page.js";
import { describe, drawGray, fmt, psnr } from "../draw.js";
import { f32, run } from "../runtime.js";
import { refresh } from "../refresh.js";
import { modelOf, settingOf, settingSwitch } from "../settings.js";

const AE = [["none", "no skip"], ["concat", "concat skips (U-Net)"], ["add", "additive skips"]];
const nameOf = (skip) => modelOf("autoencoder", `ae_${skip}`);
const present = () => AE.filter(([skip]) => models[nameOf(skip)]);

function setup() {
  settingSwitch("autoencoder", "ae-setting", () => { state.ae = {}; resetFeed(); build(); refresh(); });
  build();
  $("feed-back").addEventListener("click", feedBack);
  $("feed-reset").addEventListener("click", () => { resetFeed(); refresh(); });
}

// What the shown setting's networks were trained on: the course's differ from the lab's in network and noise.
function trainedOn(info) {
  const data = info.dataset === "course" ? "the course's first 1,000 training digits" : `the ${info.dataset} digits`;
  const net = info.bottleneck ? `a ${info.bottleneck}-filter bottleneck at 7×7` : "no bottleneck";
  return `${settingOf("autoencoder") === "course" ? "The course's Exercise 1" : "The lab's setting"}: ${net}, ` +
    `${info.init === "keras" ? "Keras'" : "PyTorch's"} initialisation, ${data}, trained on ${info.noise_dist} ` +
    `noise at σ ${fmt(info.noise)} — set part 1 to that to give the networks the input they learned from.`;
}

// The shown setting's networks, one figure each (the skip switches of the nets that have skips).
function build() {
  const row = $("ae-row"), shown = present();
  row.replaceChildren();
  $("ae-setting").textContent = shown.length ? trainedOn(models[nameOf(shown[0][0])].info) : "";
  for (const [skip, title] of shown) {
    const fig = document.createElement("figure");
    fig.innerHTML = `<canvas id="ae-${skip}" class="pix big" width="28" height="28" role="img"
      aria-label="output of the autoencoder with ${title}" aria-describedby="ae-${skip}-numbers"></canvas>
      <figcaption>${title}<br><span id="ae-${skip}-numbers" class="numbers"></span></figcaption>`;
    if (skip !== "none") {
      // one group per network: the two nets' boxes have the same labels, the legend tells them apart
      const group = document.createElement("fieldset");
      group.innerHTML = `<legend>${title}: skips kept</legend>`;
      for (const [k, label] of [[0, "skip from conv_1 (28×28)"], [1, "skip from conv_2 (14×14)"]]) {
        const box = document.createElement("label");
        box.innerHTML = `<input type="checkbox" id="ae-${skip}-keep${k}" checked> ${label}`;
        box.querySelector("input").addEventListener("change", () => { resetFeed(); refresh(); });
        group.append(box);
      }
      fig.append(group);
    }
    row.append(fig);
  }
}

function keepOf(skip) {
  if (skip === "none") return [1, 1];
  return [0, 1].map((k) => ($(`ae-${skip}-keep${k}`).checked ? 1 : 0));
}

function resetFeed() { state.feed = {}; $("feed-numbers").textContent = ""; }

async function runAutoencoder(skip, input) {
  const out = await run(nameOf(skip), { x: f32(input, [1, 1, 28, 28]), keep: f32(keepOf(skip), [2]) });
  return Float32Array.from(out.image.data);
}

async function update() {
  resetFeed();
  const t0 = performance.now(), since = state.inputAt;  // the input whose drawing this pass denoises
  for (const [skip] of present()) {
    const output = await runAutoencoder(skip, state.noisy);
    state.ae[skip] = { model: nameOf(skip), input: Float32Array.from(state.noisy), keep: keepOf(skip), output,
                       psnr: psnr(output, state.clean) };
    drawGray($(`ae-${skip}`), output);
    $(`ae-${skip}-numbers`).textContent = `PSNR ${fmt(state.ae[skip].psnr)} dB against your drawing` +
      ` (input ${fmt(psnr(state.noisy, state.clean))} dB); ${describe(output)}`;
  }
  state.timing.ae_ms = performance.now() - t0;  // the three networks' passes and drawing
  // from the input event to the frame that shows the outputs (not awaited: the next pass need not wait)
  painted().then((now) => { if (since !== undefined) state.timing.ae_after_input_ms = now - since; });
}

function feedBack() {
  return busy(async () => {
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
  });
}

export const panel = { setup, onInput: update };
