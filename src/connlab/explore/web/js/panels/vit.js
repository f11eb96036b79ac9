// 5. The ViT on your drawing: class probabilities and where its attention goes.

import { $, models, state } from "../page.js";
import { drawGray } from "../draw.js";
import { isEmpty } from "../input.js";
import { f32, run } from "../runtime.js";

function setup() {
  const { depth, heads } = models.vit.info;
  const sel = $("vit-map");
  sel.add(new Option("attention rollout (all layers)", "rollout"));
  for (let l = 0; l < depth; l++) for (let h = 0; h < heads; h++) sel.add(new Option(`layer ${l + 1}, head ${h + 1}`, `${l},${h}`));
  sel.addEventListener("change", show);
}

async function update() {
  if (isEmpty()) {  // any answer would be a guess at a blank image: ask for a digit instead
    state.vit = null;
    drawGray($("vit-view"), state.clean);
    $("vit-probs").replaceChildren();
    $("vit-legend").textContent = "";
    $("vit-numbers").textContent = "Draw a digit first: the canvas is empty, so there is nothing for the ViT to read.";
    return;
  }
  const out = await run("vit", { x: f32(state.clean, [1, 1, 28, 28]) });
  state.vit = { probs: Float32Array.from(out.probs.data), attention: out.attention, rollout: out.rollout };
  show();
}

// How much the pooled output reads each patch (models.vit.patch_relevance): the class token's row
// without its own column, or the mean over rows with mean pooling.
function relevance(matrix, T, cls) {
  const rel = [];
  if (cls) for (let j = 1; j < T; j++) rel.push(matrix[j]);
  else for (let j = 0; j < T; j++) { let s = 0; for (let i = 0; i < T; i++) s += matrix[i * T + j]; rel.push(s / T); }
  return rel;
}

function show() {
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
  // shown relative to the least and most attended patch, so a nearly uniform map still has a shape; the
  // legend gives that scale, and what a uniform map (every patch read equally) would be
  const rel = relevance(matrix, T, cls), low = Math.min(...rel), high = Math.max(...rel);
  const span = Math.max(high - low, 1e-12);
  const total = rel.reduce((p, q) => p + q, 0), sig = (v) => v.toPrecision(2);
  $("vit-legend").textContent = `red scale: none = ${sig(low)}, full = ${sig(high)} of the output's attention ` +
    `(the least and the most read patch); spread evenly, each of the ${rel.length} patches would get ${sig(total / rel.length)}`;
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
    row.setAttribute("role", "listitem");
    row.innerHTML = `<span>${c}</span><span class="fill" style="width:${(100 * p).toFixed(1)}%"></span><span>${(100 * p).toFixed(1)} %</span>`;
    return row;
  }));
  const order = rel.map((v, j) => [v, j]).sort((p, q) => q[0] - p[0]).slice(0, 3);
  $("vit-numbers").textContent = `The ViT reads a ${best} (${(100 * probs[best]).toFixed(1)} %). Most attended patches ` +
    `(row, column of the ${grid}×${grid} grid): ` + order.map(([v, j]) => `(${Math.floor(j / grid) + 1}, ${(j % grid) + 1}) ${v.toPrecision(2)}`).join(", ");
}

export const panel = { setup, onInput: update };
