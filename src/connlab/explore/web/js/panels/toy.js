// 7. The course's toy attention head (Part II's toy task): who ordered the chicken, who the beef.

import { $, busy, models, state } from "../page.js";
import { heatTable } from "../draw.js";
import { i64, run } from "../runtime.js";

function tokensOf(text) {  // the words of a typed sentence, or the reason it is not one
  const { tokens, length } = models.toy_head.info;
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (!words.length || words.length > length) return { error: `type 1 to ${length} words` };
  const unknown = words.find((w) => !tokens.includes(w));
  if (unknown) return { error: `"${unknown}" is not one of the tokens: ${tokens.join(", ")}` };
  return { words };
}

function setup() {
  const { sentences } = models.toy_head.info;
  const sel = $("toy-sentence");
  for (const s of sentences) sel.add(new Option(s, s));
  $("toy-input").value = sentences[0];
  sel.addEventListener("change", () => { $("toy-input").value = sel.value; update(); });
  $("toy-input").addEventListener("input", update);
}

async function update() {
  const { tokens, length } = models.toy_head.info;
  const parsed = tokensOf($("toy-input").value);
  if (parsed.error) {  // the old tables belonged to another sentence: take them away
    state.toy = null;
    $("toy-weights").replaceChildren();
    $("toy-probs").replaceChildren();
    $("toy-output").textContent = parsed.error;
    return;
  }
  const words = parsed.words, L = words.length, V = tokens.length;
  // The head is causal: positions < L do not depend on what follows, so the sentence is padded to the
  // network's length with <Start> and only its own L rows are shown.
  const ids = words.map((w) => tokens.indexOf(w));
  while (ids.length < length) ids.push(0);
  await busy(async () => {
    const out = await run("toy_head", { tokens: i64(ids, [1, length]) });
    const T = length, w = out.attention.data, p = out.probs.data;
    const weights = [], probs = [];
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) weights.push(w[i * T + j]);
      for (let c = 0; c < V; c++) probs.push(p[i * V + c]);
    }
    const rows = words.map((t, i) => `${i}: ${t}`);
    $("toy-weights").replaceChildren(heatTable(
      "attention weights: row = query position, column = key; zero above the diagonal (the causal mask)", "", rows, words, weights, L, "40, 90, 200"));
    $("toy-probs").replaceChildren(heatTable("next-token probabilities softmax(z): row = position", "", rows, tokens, probs, V, "40, 90, 200"));
    const last = probs.slice((L - 1) * V, L * V), best = last.indexOf(Math.max(...last));
    state.toy = { words, weights, probs };
    $("toy-output").textContent = `after “${words.join(" ")}” the head expects “${tokens[best]}” ` +
      `(${(100 * last[best]).toFixed(1)} %)` + (words[L - 1] === "the" ? `; chicken ${(100 * last[tokens.indexOf("chicken")]).toFixed(1)} %, ` +
      `beef ${(100 * last[tokens.indexOf("beef")]).toFixed(1)} %` : "");
  });
}

export const panel = { setup, start: update };
