// connlab explorer: the lab's exported networks, run by onnxruntime-web inside this one file.
// The networks themselves are never written in JavaScript: the page prepares inputs (drawing, noise),
// loops over the exported models (ladder chain, DDIM steps, feeding back) and draws. Which panels
// exist, in which order and under which heading comes from the manifest (explore/page.py's parts);
// this file only knows which module draws each part.

import { $, explorer, manifest, models, state } from "./page.js";
import { createSessions, loadRuntime, selfTest, sessions } from "./runtime.js";
import { setupDrawing, showTestDigit } from "./input.js";
import { onInput } from "./refresh.js";
import { fmt } from "./draw.js";
import { panel as autoencoder } from "./panels/autoencoder.js";
import { panel as ladder } from "./panels/ladder.js";
import { panel as diffusion } from "./panels/diffusion.js";
import { panel as vit } from "./panels/vit.js";
import { panel as attention } from "./panels/attention.js";
import { panel as toy } from "./panels/toy.js";

const MODULES = { autoencoder, ladder, diffusion, vit, attention, toy_attention: toy };

// A panel's section keeps its heading and says why it is empty.
function leaveOut(part, text) {
  const section = $(part.section), note = document.createElement("p");
  note.className = "left-out";
  note.textContent = text;
  section.replaceChildren(...[section.querySelector("h2"), ...section.querySelectorAll("p.report")], note);
}

// Each panel's section in the report (report.html, beside this page in a demo folder), and the lecture's
// parts that have no live panel, by their report sections.
function showReportLinks() {
  const link = (section, text) => Object.assign(document.createElement("a"), { href: `report.html#${section}`, textContent: text });
  for (const p of manifest.panels.filter((q) => q.settings.length)) {  // a part with no run has no section there
    // one line per setting the panel shows (the lab's and the course's each have their own report section)
    const lines = p.settings.length > 1 ? p.settings : [{ ...p, label: "" }];
    const notes = lines.map((s) => {
      const note = document.createElement("p"), which = s.label ? `, ${s.label}` : "";
      note.className = "report";
      if (s.verdict) note.append(`The measured verdict${which}: `, s.verdict, " (", link(s.report, "the report's section"), ")");
      else note.append(`The measured verdict${which}: `, link(s.report, `the report's section on ${p.title}`), ".");
      return note;
    });
    const section = $(p.section);  // after the panel's "try this" notes
    ([...section.querySelectorAll("p.try")].at(-1) || section.querySelector("h2")).after(...notes);
  }
  for (const r of manifest.report) {
    const li = document.createElement("li");
    li.append(link(r.section, `report.html#${r.section}`), ` — ${r.what}`);
    $("report-links").append(li);
  }
}

function showLeftOut() {
  const byPart = Object.fromEntries(manifest.panels.map((p) => [p.part, p]));
  for (const p of manifest.left_out) {
    const li = document.createElement("li");
    li.textContent = `Left out: ${p.title} — ${p.why}. Make it with: ${p.command}`;
    $("left-out").append(li);
    leaveOut(byPart[p.part], li.textContent);
  }
}

async function start() {
  const t0 = performance.now();
  state.timing.script_start_ms = t0;
  showReportLinks();
  showLeftOut();
  await loadRuntime();
  state.timing.runtime_ms = performance.now() - t0;
  const loadErrors = await createSessions();
  state.timing.sessions_ms = performance.now() - t0 - state.timing.runtime_ms;
  const report = await selfTest(loadErrors);
  // a model that did not load takes its panel (and the panel's other models) with it
  const live = manifest.panels.filter((p) => p.models.length && p.models.every((name) => sessions[name]));
  for (const p of manifest.panels.filter((q) => q.models.length && !live.includes(q))) {
    const name = p.models.find((n) => !sessions[n]);
    leaveOut(p, `Left out: ${name} could not be loaded (${report.errors.find((e) => e.startsWith(name)) || "see the self-test"}).`);
    for (const n of p.models) delete models[n];
  }
  $("status").textContent = `ready: ${Object.keys(sessions).length} models` +
    (manifest.export_errors.length ? `; not exported: ${manifest.export_errors.join("; ")}` : "");
  setupDrawing();
  const panels = live.map((p) => MODULES[p.part]);
  for (const panel of panels) panel.setup();
  for (const panel of panels) if (panel.onInput) onInput(panel.onInput);
  showTestDigit(0);
  for (const panel of panels) if (panel.start) await panel.start();
  await explorer.settled();
  // ready: every model loaded, self-tested and run once on the first digit, its pictures drawn
  await new Promise((r) => requestAnimationFrame(() => r()));
  state.timing.ready_ms = performance.now();   // since the page started loading
  state.timing.startup_ms = state.timing.ready_ms - t0;
  $("status").textContent += ` — ready in ${fmt(state.timing.ready_ms / 1000, 2)} s`;
  document.body.dataset.ready = "true";
  return report;
}

explorer.ready = start().catch((err) => {
  $("self-test").textContent = JSON.stringify({ models: 0, max_abs_diff: null, errors: [String(err.message || err)] });
  $("status").textContent = `the page could not start: ${err.message || err}`;
  throw err;
});
