// Work triggered by the drawing runs one pass at a time; a change during a pass starts one more, from the top.
// The panels that follow the drawing register here (main.js, in the manifest's order).

import { explorer } from "./page.js";

const listeners = [];
let running = false, again = false;

export function onInput(update) {
  listeners.push(update);
}

// True while a pass runs whose drawing has changed since it began: a panel with a long loop (the ladder's
// T steps) stops early, so the next pass, from the autoencoders, starts at once.
export const superseded = () => again;

export async function refresh() {
  if (running) { again = true; return; }
  running = true; explorer.busy += 1;
  try {
    do {
      again = false;
      for (const update of listeners) {
        await update();
        if (again) break;  // newer input: start over from the first panel (the autoencoders) rather than
      }                    // finish a pass whose pictures are already out of date
    } while (again);
  } catch (err) {
    console.error(err);
  } finally {
    running = false; explorer.busy -= 1;
  }
}

explorer.settled = async () => {
  while (explorer.busy > 0 || running || explorer.paints > 0) await new Promise((r) => setTimeout(r, 5));
};
