// onnxruntime-web inside the page: no network. The runtime module is imported from a blob: URL, its
// WASM binary is unpacked from embedded gzip bytes and every model is handed over as bytes.

import { $, manifest, state } from "./page.js";

export function b64bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text.trim());  // native where the browser has it
  const raw = atob(text.trim());
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function decodeTensor(t) {
  const bytes = b64bytes(t.data);
  const data = t.type === "int64" ? new BigInt64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  return { type: t.type, dims: t.dims, data };
}

const runtime = { ort: null };
export const sessions = {};
let queue = Promise.resolve();

export async function loadRuntime() {
  const url = URL.createObjectURL(new Blob([b64bytes($("ort-mjs").textContent)], { type: "text/javascript" }));
  const ort = await import(url);
  ort.env.wasm.numThreads = 1;   // threads need cross-origin isolation, which file:// cannot give
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = await gunzip(b64bytes($("ort-wasm").textContent));
  ort.env.logLevel = "error";
  runtime.ort = ort;
}

// Every model of the manifest as a session; returns the errors of those that did not load.
export async function createSessions() {
  const errors = [];
  for (const [name, m] of Object.entries(manifest.models)) {
    try {
      // The exporter already folded constants and removed dead nodes (onnxscript's optimizer); the
      // runtime's own graph rewrites at creation cost more start-up than they save on these small
      // networks (benchmarks/RESULTS.md, "explorer"), so they are off.
      sessions[name] = await runtime.ort.InferenceSession.create(b64bytes(m.onnx),
        { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
    } catch (err) {
      errors.push(`${name}: could not load (${err.message || err})`);
    }
  }
  return errors;
}

export function tensor(type, data, dims) {
  return new runtime.ort.Tensor(type, data, dims);
}
export const f32 = (data, dims) => tensor("float32", Float32Array.from(data), dims);
export const i64 = (values, dims = [values.length]) => tensor("int64", BigInt64Array.from(values.map((v) => BigInt(v))), dims);

// The WASM backend runs one session at a time: every call goes through one queue.
export function run(name, feeds) {
  const session = sessions[name];
  const own = {};
  for (const k of session.inputNames) own[k] = feeds[k];  // an input the graph dropped (unused) is not fed
  const result = queue.then(() => session.run(own));
  queue = result.catch(() => {});
  return result;
}

// Every model on its recorded input, against PyTorch's recorded output.
export async function selfTest(loadErrors) {
  const report = { models: 0, max_abs_diff: 0, errors: [...loadErrors] };
  for (const [name, m] of Object.entries(manifest.models)) {
    if (!sessions[name]) continue;
    try {
      const feeds = {};
      for (const [k, t] of Object.entries(m.inputs)) {
        const d = decodeTensor(t);
        feeds[k] = tensor(d.type, d.data, d.dims);
      }
      const out = await run(name, feeds);
      let worst = 0;
      for (const [k, t] of Object.entries(m.outputs)) {
        const want = decodeTensor(t).data, got = out[k].data;
        if (got.length !== want.length) throw new Error(`output ${k}: ${got.length} values, expected ${want.length}`);
        for (let i = 0; i < want.length; i++) {
          const diff = Math.abs(got[i] - want[i]);
          if (!(diff <= worst)) worst = Number.isNaN(diff) ? Infinity : diff;
        }
      }
      report.models += 1;
      report.max_abs_diff = Math.max(report.max_abs_diff, worst);
      if (!(worst <= 1e-3)) report.errors.push(`${name}: largest difference from PyTorch ${worst} > 1e-3`);
    } catch (err) {
      report.errors.push(`${name}: ${err.message || err}`);
    }
  }
  state.selfTest = report;
  $("self-test").textContent = JSON.stringify(report);
  $("self-test-box").classList.add(report.errors.length ? "bad" : "good");
  return report;
}
