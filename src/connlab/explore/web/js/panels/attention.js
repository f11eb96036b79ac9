// 6. Attention as a softmax gate: the sequence task's transformer on digits you type.

import { $, busy, models, state } from "../page.js";
import { heatTable } from "../draw.js";
import { i64, run } from "../runtime.js";

function setup() {
  const { length, depth, heads, vocab, task } = models.sequence.info;
  const input = $("seq-input");
  input.value = "31415926535897932384".slice(0, length).padEnd(length, "0");
  input.maxLength = length;
  input.setAttribute("aria-describedby", "seq-output");
  input.previousSibling.textContent = `your sequence: ${length} digits 0–${vocab - 1} (task: ${task}) `;
  const sel = $("seq-map");
  for (let l = 0; l < depth; l++) for (let h = 0; h < heads; h++) sel.add(new Option(`layer ${l + 1}, head ${h + 1}`, `${l},${h}`));
  input.addEventListener("input", update);
  sel.addEventListener("change", show);
}

// Why a typed sequence is not one the network takes, or "".
function whatIsWrong(text, length, vocab) {
  const bad = Array.from(text).find((c) => !(/^[0-9]$/.test(c) && Number(c) < vocab));
  if (bad !== undefined) return `"${bad}" is not a digit 0–${vocab - 1}`;
  if (text.length !== length) return `"${text}" has ${text.length} digit${text.length === 1 ? "" : "s"}`;
  return "";
}

async function update() {
  const { length, vocab, task } = models.sequence.info;
  const text = $("seq-input").value.trim();
  const digits = Array.from(text, Number);
  const problem = whatIsWrong(text, length, vocab);
  if (problem) {  // the old table belonged to another sequence: take it away
    state.sequence = null;
    $("seq-table").replaceChildren();
    $("seq-output").textContent = `type exactly ${length} digits 0–${vocab - 1}: ${problem}`;
    $("seq-input").setAttribute("aria-invalid", "true");
    return;
  }
  $("seq-input").setAttribute("aria-invalid", "false");
  await busy(async () => {
    const out = await run("sequence", { tokens: i64(digits, [1, length]) });
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
    show();
  });
}

function show() {
  const S = state.sequence;
  if (!S) return;
  const { length: L, heads } = models.sequence.info;
  const [l, h] = $("seq-map").value.split(",").map(Number);
  const offset = (l * heads + h) * L * L;  // attention (depth, 1, heads, L, L)
  const w = S.attention.data.subarray(offset, offset + L * L);
  $("seq-table").replaceChildren(heatTable(
    `softmax gate of layer ${l + 1}, head ${h + 1}: row = output position (query), column = input position (key); each row sums to 1`,
    "out \\ in", S.answer.map((d, i) => `${i + 1}: ${d}`), S.digits.map((d, j) => `${j + 1}: ${d}`), w, L, "200, 40, 40"));
}

export const panel = { setup, start: update };
