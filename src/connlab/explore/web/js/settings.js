// A panel that shows two settings of its exercise — the lab's run and the course's (`--preset course`) — gets a
// switch here. The manifest lists each panel's settings with their models (explore/page.py's panels); a model
// of the course's setting is named like the lab's with the prefix "course_" (page.py's model_name).

import { $, manifest, state } from "./page.js";

// The settings the page holds models for, the lab's first: [{setting, label, models, report, verdict}].
export const settingsOf = (part) => manifest.panels.find((p) => p.part === part)?.settings ?? [];

// The setting the panel shows now.
export const settingOf = (part) => state.setting[part] ?? settingsOf(part)[0]?.setting ?? "lab";

// The model called `name` in the lab's setting, in the setting the panel shows now.
export function modelOf(part, name) {
  const setting = settingOf(part);
  return setting === "lab" ? name : `${setting}_${name}`;
}

// Radio buttons before the element `beforeId` when the panel has both settings; `changed()` runs after a switch.
export function settingSwitch(part, beforeId, changed) {
  const settings = settingsOf(part);
  state.setting[part] = settings[0]?.setting ?? "lab";
  if (settings.length < 2) return;
  const group = document.createElement("fieldset");
  group.className = "setting";
  group.innerHTML = "<legend>which runs this panel shows</legend>";
  for (const s of settings) {
    const input = Object.assign(document.createElement("input"), {
      type: "radio", name: `${part}-setting`, id: `${part}-setting-${s.setting}`, value: s.setting,
      checked: s.setting === state.setting[part],
    });
    input.addEventListener("change", () => { state.setting[part] = s.setting; changed(); });
    const label = document.createElement("label");
    label.append(input, ` ${s.label}`);
    group.append(label);
  }
  $(beforeId).before(group);
}
