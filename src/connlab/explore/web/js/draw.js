// Pictures and numbers: grey images on canvases, PSNR, short descriptions, the page's seeded noise.

export function drawGray(canvas, pixels, w = 28, h = 28) {
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

export function psnr(a, b) {
  let mse = 0;
  for (let i = 0; i < a.length; i++) mse += (a[i] - b[i]) ** 2;
  return 10 * Math.log10(1 / Math.max(mse / a.length, 1e-10));
}

export function describe(pixels) {
  let sum = 0, ink = 0;
  for (const v of pixels) { sum += v; if (v > 0.5) ink += 1; }
  return `mean ${(sum / pixels.length).toFixed(3)}, ${ink} of 784 pixels above 0.5`;
}

export const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

// Seeded draws for the page's own noise (mulberry32; normals by Box-Muller).
export function rng(seed) {
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
  // salt-pepper: round(U(−1, 1)), the course's Exercise 1 noise (x + σ·that, clipped; σ = 1 is the course's)
  const draws = { uniform: () => 2 * uniform() - 1, "salt-pepper": () => Math.round(2 * uniform() - 1), norm: normal };
  return { uniform, normal, draw: (dist) => (draws[dist] || normal)() };
}

// A table of weights in [0, 1], each cell shaded by its value: rows × cols, values row-major with `width`.
export function heatTable(caption, corner, rows, cols, values, width, rgb) {
  const table = document.createElement("table");
  table.createCaption().textContent = caption;
  const head = table.insertRow();
  head.append(Object.assign(document.createElement("th"), { textContent: corner }));
  for (const c of cols) head.append(Object.assign(document.createElement("th"), { scope: "col", textContent: c }));
  rows.forEach((r, i) => {
    const row = table.insertRow();
    row.append(Object.assign(document.createElement("th"), { scope: "row", textContent: r }));
    cols.forEach((_, j) => {
      const cell = row.insertCell(), v = values[i * width + j];
      cell.textContent = v.toFixed(2);
      cell.style.background = `rgba(${rgb}, ${v.toFixed(3)})`;
      if (v > 0.5) cell.style.color = "#fff";
    });
  });
  return table;
}
