// Predict view: a form generated from the spec, the gauge, the verdict and the top drivers.

import { explain, predict } from "./api.js";
import { byId, clear, h, say } from "./dom.js";
import {
  TIERS,
  categoryLabel,
  decimals,
  featureLabel,
  formatPercent,
  formatValue,
  isNumeric,
  parseRecord,
  tierLabel,
} from "./spec.js";

const DRIVERS_SHOWN = 5;
let info = null;
let requestSeq = 0;
const controls = new Map(); // feature name -> {feature, input, slider, error}

const hasRange = (f) => isNumeric(f) && Number.isFinite(f.min) && Number.isFinite(f.max) && f.max > f.min;

/** What the model saw of a numeric feature in training ({min, max, q01, q50, q99}), or null (older versions). */
function trained(f) {
  const r = info && info.training_ranges ? info.training_ranges[f.name] : null;
  return r && Number.isFinite(r.min) && Number.isFinite(r.max) && r.max > r.min ? r : null;
}

/** The slider spans the training data (every seen value, nothing the model never saw); the number box keeps the
 * spec's bounds, which are the validation limits. */
function sliderRange(f) {
  const r = trained(f);
  if (r) return { min: r.min, max: r.max };
  return hasRange(f) ? { min: f.min, max: f.max } : null;
}

function onStep(f, value) {
  const step = Number(f.step) > 0 ? Number(f.step) : f.type === "integer" ? 1 : 0.01;
  return Number((Math.round(value / step) * step).toFixed(decimals(f)));
}

function formatForInput(f, value) {
  if (value === null || value === undefined) return "";
  if (!isNumeric(f)) return String(value);
  const n = Number(value);
  return f.type === "integer" ? String(Math.round(n)) : String(Number(n.toFixed(decimals(f))));
}

function defaultValue(f) {
  if (!isNumeric(f)) return f.values[0];
  const r = trained(f);
  if (r) return onStep(f, r.q50); // a typical customer: the training median
  if (hasRange(f)) {
    const step = Number(f.step) > 0 ? Number(f.step) : f.type === "integer" ? 1 : 0.01;
    return f.min + Math.round((f.max - f.min) / 2 / step) * step;
  }
  return f.nullable ? null : Number.isFinite(f.min) ? f.min : 0;
}

function updateSliderFill(slider) {
  const min = Number(slider.min);
  const max = Number(slider.max);
  const share = max > min ? (Number(slider.value) - min) / (max - min) : 0;
  slider.style.setProperty("--fill", `${Math.max(0, Math.min(1, share)) * 100}%`);
}

function setFieldError(name, message) {
  const c = controls.get(name);
  if (!c) return;
  say(c.error, message);
  c.wrap.classList.toggle("invalid", Boolean(message));
  if (message) c.input.setAttribute("aria-invalid", "true");
  else c.input.removeAttribute("aria-invalid");
}

function buildField(f) {
  const id = `f-${f.name}`;
  const hintId = `hint-${f.name}`;
  const errorId = `err-${f.name}`;
  const label = featureLabel(f);
  const hintParts = [];
  if (f.description) hintParts.push(f.description);
  const seen = trained(f);
  if (seen) hintParts.push(`trained on ${formatValue(f, seen.min)} – ${formatValue(f, seen.max)}`);
  if (hasRange(f)) hintParts.push(`${seen ? "valid " : ""}${formatValue(f, f.min)} – ${formatValue(f, f.max)}`);
  if (f.nullable) hintParts.push("optional");
  const hint = h("p", { class: "hint", id: hintId }, hintParts.join(" · "));
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const wrap = h("div", { class: "field", "data-feature": f.name });
  let input;
  let slider = null;

  if (isNumeric(f)) {
    input = h("input", {
      id,
      name: f.name,
      type: "number",
      inputmode: f.type === "integer" ? "numeric" : "decimal",
      min: f.min ?? undefined,
      max: f.max ?? undefined,
      step: f.step ?? (f.type === "integer" ? 1 : "any"),
      placeholder: f.nullable ? "unknown" : undefined,
      required: !f.nullable,
      "aria-describedby": `${hintId} ${errorId}`,
      autocomplete: "off",
    });
    const box = h("div", { class: "number-box" }, input, f.unit ? h("span", { class: "unit", "aria-hidden": "true" }, f.unit) : null);
    const span = sliderRange(f);
    if (span) {
      slider = h("input", {
        type: "range",
        class: "slider",
        min: span.min,
        max: span.max,
        step: f.step ?? (f.type === "integer" ? 1 : "any"),
        "aria-label": `${label} (slider)`,
        "data-slider": f.name,
      });
      slider.addEventListener("input", () => {
        input.value = formatForInput(f, slider.value);
        updateSliderFill(slider);
        setFieldError(f.name, "");
        edited();
      });
      input.addEventListener("input", () => {
        const n = Number(input.value);
        if (input.value !== "" && Number.isFinite(n)) {
          slider.value = String(Math.max(span.min, Math.min(span.max, n)));
          updateSliderFill(slider);
        }
        setFieldError(f.name, "");
        edited();
      });
    } else {
      input.addEventListener("input", () => {
        setFieldError(f.name, "");
        edited();
      });
    }
    wrap.append(
      h("div", { class: "field-head" }, h("label", { for: id }, label)),
      h("div", { class: "field-inputs" }, box, slider),
    );
  } else {
    input = h("select", { id, name: f.name, "aria-describedby": `${hintId} ${errorId}`, required: !f.nullable });
    if (f.nullable) input.append(h("option", { value: "" }, "Unknown"));
    for (const v of f.values) input.append(h("option", { value: String(v) }, categoryLabel(f, v)));
    input.addEventListener("change", () => {
      setFieldError(f.name, "");
      edited();
    });
    wrap.append(h("div", { class: "field-head" }, h("label", { for: id }, label)), h("div", { class: "select-box" }, input));
  }
  wrap.append(hint, error);
  controls.set(f.name, { feature: f, input, slider, error, wrap });
  return wrap;
}

/** The result on screen no longer describes the form: say so, until the next prediction. */
function markStale() {
  const result = byId("result");
  if (result.dataset.state !== "done") return;
  result.dataset.state = "stale";
  say(byId("result-stale"), "The inputs changed since this prediction: predict again to update it.");
  byId("drivers").dataset.state = "stale";
}

/** A person changed a field: no preset describes the form any more, and the result is outdated. */
function edited() {
  markStale();
  for (const b of byId("presets").querySelectorAll(".chip")) b.setAttribute("aria-pressed", "false");
}

function setValues(values) {
  for (const [name, c] of controls) {
    const v = values[name];
    c.input.value = formatForInput(c.feature, v === undefined ? null : v);
    if (c.slider) {
      if (c.input.value !== "") c.slider.value = c.input.value;
      updateSliderFill(c.slider);
    }
    setFieldError(name, "");
  }
  say(byId("form-error"), "");
  markStale();
}

function readForm() {
  const record = {};
  // A number input reports "" for text it cannot parse; keep that apart from a truly empty field.
  for (const [name, c] of controls) record[name] = c.input.validity && c.input.validity.badInput ? "not a number" : c.input.value;
  return parseRecord(info.spec.features, record, info.input_schema);
}

function resetResult(state) {
  const result = byId("result");
  result.dataset.state = state;
  byId("gauge").dataset.risk = "none";
  byId("gauge-arc").style.setProperty("--p", "0");
  const prob = byId("probability");
  prob.textContent = "—";
  prob.dataset.probability = "";
  byId("verdict").textContent = state === "loading" ? "Scoring…" : "No prediction yet";
  byId("risk-badge").hidden = true;
  say(byId("advice"), "");
  say(byId("extrapolation"), "");
  say(byId("result-stale"), "");
  byId("drivers").dataset.state = "";
  say(byId("result-error"), "");
}

function showPrediction(p) {
  const result = byId("result");
  result.dataset.state = "done";
  say(byId("result-stale"), "");
  byId("drivers").dataset.state = "";
  const risk = TIERS[p.risk] ? p.risk : "none";
  byId("gauge").dataset.risk = risk;
  byId("gauge-arc").style.setProperty("--p", String(Math.max(0, Math.min(1, p.probability))));
  const prob = byId("probability");
  prob.textContent = formatPercent(p.probability);
  prob.dataset.probability = String(p.probability);
  byId("verdict").textContent = p.churn === 1 ? "Likely to churn" : "Likely to stay";
  byId("verdict").dataset.churn = String(p.churn);
  const badge = byId("risk-badge");
  badge.textContent = tierLabel(p.risk);
  badge.dataset.risk = risk;
  badge.hidden = false;
  say(byId("advice"), TIERS[p.risk] ? TIERS[p.risk].advice : "");
  const byName = new Map(info.spec.features.map((f) => [f.name, f]));
  const beyond = p.outside.map((name) => {
    const f = byName.get(name);
    const r = f ? trained(f) : null;
    return f && r ? `${featureLabel(f)} (trained on ${formatValue(f, r.min)} – ${formatValue(f, r.max)})` : name;
  });
  const note = beyond.length ? `Outside what the model was trained on: ${beyond.join(", ")}. Treat this prediction as an extrapolation.` : "";
  say(byId("extrapolation"), note);
}

function showDrivers(explanation, instance) {
  const list = clear(byId("drivers-list"));
  const byName = new Map(info.spec.features.map((f) => [f.name, f]));
  const entries = Object.entries(explanation.contributions)
    .filter(([, v]) => typeof v === "number" && Number.isFinite(v))
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
    .slice(0, DRIVERS_SHOWN);
  const scale = Math.max(...entries.map(([, v]) => Math.abs(v)), 1e-9);
  for (const [name, value] of entries) {
    const f = byName.get(name);
    const up = value > 0;
    const bar = h("span", { class: "driver-bar" });
    bar.style.setProperty("--w", `${(Math.abs(value) / scale) * 100}%`);
    list.append(
      h(
        "li",
        { class: `driver ${up ? "up" : "down"}`, "data-feature": name },
        h(
          "span",
          { class: "driver-name" },
          f ? featureLabel(f) : name,
          h("span", { class: "driver-value" }, f ? formatValue(f, instance[name]) : String(instance[name] ?? "")),
        ),
        h("span", { class: "driver-track", "aria-hidden": "true" }, bar),
        h("span", { class: "driver-effect" }, `${up ? "+" : "−"}${Math.abs(value).toFixed(2)}`),
        h("span", { class: "visually-hidden" }, up ? " raises the risk" : " lowers the risk"),
      ),
    );
  }
  byId("drivers-note").textContent = entries.length
    ? "Contribution of each feature in log-odds: red bars raise the churn risk, green bars lower it."
    : "The explanation named no features.";
}

function showServerErrors(err) {
  let placed = false;
  for (const d of err.details || []) {
    if (d.field && controls.has(d.field)) {
      const rule = d.rule ? d.rule : "invalid value";
      setFieldError(d.field, `Rejected by the model server: ${rule}.`);
      placed = true;
    }
  }
  say(byId("form-error"), placed ? `${err.message}` : "");
  if (!placed) say(byId("result-error"), err.message);
}

async function onSubmit(event) {
  event.preventDefault();
  if (!info) return;
  say(byId("form-error"), "");
  const { instance, errors } = readForm();
  for (const name of controls.keys()) setFieldError(name, errors[name] || "");
  const bad = Object.keys(errors);
  if (bad.length) {
    say(byId("form-error"), bad.length === 1 ? "Fix the highlighted field." : `Fix the ${bad.length} highlighted fields.`);
    controls.get(bad[0]).input.focus();
    return;
  }
  const seq = ++requestSeq;
  const button = byId("predict-submit");
  button.setAttribute("aria-busy", "true");
  resetResult("loading");
  clear(byId("drivers-list"));
  byId("drivers-note").textContent = "Explaining…";
  const [pred, expl] = await Promise.allSettled([predict([instance]), explain(instance)]);
  if (seq !== requestSeq) return; // a newer submit owns the result
  button.removeAttribute("aria-busy");
  if (pred.status === "rejected") {
    resetResult("error");
    showServerErrors(pred.reason);
    byId("drivers-note").textContent = "No prediction, so no drivers.";
    return;
  }
  showPrediction(pred.value[0]);
  if (expl.status === "fulfilled") showDrivers(expl.value, instance);
  else byId("drivers-note").textContent = `Explanation unavailable: ${expl.reason.message}`;
}

function buildPresets() {
  const box = clear(byId("presets"));
  const presets = Array.isArray(info.presets) ? info.presets : [];
  presets.forEach((p, i) => {
    if (!p || typeof p.features !== "object") return;
    const risk = TIERS[p.risk] ? p.risk : "none";
    const button = h("button", { type: "button", class: "chip", "data-preset": i, "data-risk": risk }, h("span", { class: "chip-dot", "aria-hidden": "true" }), String(p.name ?? `Customer ${i + 1}`));
    button.addEventListener("click", () => {
      setValues(p.features);
      for (const b of box.querySelectorAll(".chip")) b.setAttribute("aria-pressed", String(b === button));
    });
    button.setAttribute("aria-pressed", "false");
    box.append(button);
  });
}

function defaults() {
  return Object.fromEntries(info.spec.features.map((f) => [f.name, defaultValue(f)]));
}

let wired = false;

/** (Re)build the view for a model card. */
export function renderPredict(modelInfo) {
  info = modelInfo;
  controls.clear();
  const fields = clear(byId("fields"));
  for (const f of info.spec.features) fields.append(buildField(f));
  fields.removeAttribute("aria-busy");
  buildPresets();
  setValues(defaults());
  const t = Number(info.threshold);
  const angle = Math.PI * (1 - t);
  const [x, y] = [100 + 80 * Math.cos(angle), 100 - 80 * Math.sin(angle)];
  const [dx, dy] = [Math.cos(angle), -Math.sin(angle)];
  byId("gauge").dataset.threshold = String(t);
  const tick = byId("gauge-threshold");
  tick.setAttribute("x1", String(x - dx * 13));
  tick.setAttribute("y1", String(y - dy * 13));
  tick.setAttribute("x2", String(x + dx * 13));
  tick.setAttribute("y2", String(y + dy * 13));
  byId("threshold-note").textContent = `Churn verdict at ${formatPercent(t)} or more (the model's tuned threshold, marked on the gauge).`;
  byId("predict-submit").disabled = false;
  byId("predict-reset").disabled = false;
  if (!wired) {
    wired = true;
    byId("predict-form").addEventListener("submit", onSubmit);
    byId("predict-reset").addEventListener("click", () => {
      setValues(defaults());
      for (const b of byId("presets").querySelectorAll(".chip")) b.setAttribute("aria-pressed", "false");
      resetResult("empty");
      clear(byId("drivers-list"));
      byId("drivers-note").textContent = "Run a prediction to see which features pushed the risk up or down.";
    });
  }
}
