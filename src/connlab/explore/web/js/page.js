// The page's shared pieces: its manifest (written by connlab/explore/page.py), the element lookup and
// the state that the tests and benchmarks/explorer.py read through window.explorer.

export const manifest = JSON.parse(document.getElementById("manifest").textContent);
export const models = manifest.models;
export const $ = (id) => document.getElementById(id);
export const PIXELS = 28 * 28;

export const state = {
  clean: new Float32Array(PIXELS), noisy: new Float32Array(PIXELS), noise: null,
  setting: {}, ae: {}, feed: {}, ladder: null, diffusion: null, vit: null, sequence: null, toy: null,
  timing: {}, selfTest: null,
};
export const explorer = { state, ready: null, busy: 0, paints: 0 };
window.explorer = explorer;

// Work the tests wait for (explorer.settled) counts itself busy while it runs.
export async function busy(work) {
  explorer.busy += 1;
  try {
    return await work();
  } finally {
    explorer.busy -= 1;
  }
}

// Resolves once the frame that shows what was just drawn has been painted: requestAnimationFrame runs
// before that frame's paint, a message posted from it is handled after. Timings end here, on screen.
export function painted() {
  explorer.paints += 1;
  return new Promise((resolve) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { explorer.paints -= 1; resolve(performance.now()); };
    channel.port2.postMessage(null);
  }));
}
