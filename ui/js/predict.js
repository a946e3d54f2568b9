// Predict view: a form generated from the spec that predicts as it is edited, the gauge, the verdict in words, and
// the explanation as a waterfall from the base value to the prediction.

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
  tierBounds,
  tierLabel,
} from "./spec.js";

/** Waterfall steps named one by one; the remaining features are one combined step. */
const STEPS_SHOWN = 5;
let info = null;
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

/** Stale-note texts: the result stays visible, greyed, until the one for the current form arrives. */
const UPDATING = "The inputs changed: updating the prediction…";
const FIX_FIELDS = "The inputs changed: fix the highlighted field to update the prediction.";

/** The result on screen no longer describes the form: say so, until the next prediction. */
function markStale(note = UPDATING) {
  const result = byId("result");
  if (result.dataset.state !== "done" && result.dataset.state !== "stale") return;
  result.dataset.state = "stale";
  say(byId("result-stale"), note);
  byId("drivers").dataset.state = "stale";
}

/** A person changed a field: no preset describes the form any more, the result is outdated, an update is due. */
function edited() {
  markStale();
  for (const b of byId("presets").querySelectorAll(".chip")) b.setAttribute("aria-pressed", "false");
  schedule();
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
  byId("verdict").textContent = state === "loading" ? "Scoring…" : state === "error" ? "No prediction" : "No prediction yet";
  byId("risk-badge").hidden = true;
  say(byId("tier-note"), "");
  say(byId("advice"), "");
  say(byId("extrapolation"), "");
  say(byId("result-stale"), "");
  byId("drivers").dataset.state = "";
  say(byId("result-error"), "");
  byId("peek").hidden = true;
}

function clearDrivers(note) {
  clear(byId("drivers-list"));
  clear(byId("logodds-body"));
  byId("logodds").hidden = true;
  byId("drivers-note").textContent = note;
}

const pct = (p) => formatPercent(p);

/** Why the tier is what it is, in words: the verdict and the tier never seem to disagree. */
function tierSentence(p) {
  const t = Number(info.threshold);
  const b = tierBounds(info);
  if (p.risk === "high") return `${pct(p.probability)} is at or above the ${pct(t)} churn threshold, so the model predicts churn: high risk.`;
  if (p.risk === "medium") {
    return `${pct(p.probability)} is below the ${pct(t)} churn threshold, so the model predicts the customer stays; it is at least half the threshold (${pct(b.medium)}), so it is medium risk: worth watching.`;
  }
  if (p.risk === "low") return `${pct(p.probability)} is below half the churn threshold (${pct(b.medium)}), so the model predicts the customer stays: low risk.`;
  return "";
}

function showPrediction(p) {
  const result = byId("result");
  result.dataset.state = "done";
  say(byId("result-stale"), "");
  say(byId("result-error"), "");
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
  say(byId("tier-note"), tierSentence(p));
  const byName = new Map(info.spec.features.map((f) => [f.name, f]));
  const beyond = p.outside.map((name) => {
    const f = byName.get(name);
    const r = f ? trained(f) : null;
    return f && r ? `${featureLabel(f)} (trained on ${formatValue(f, r.min)} – ${formatValue(f, r.max)})` : name;
  });
  const note = beyond.length ? `Outside what the model was trained on: ${beyond.join(", ")}. Treat this prediction as an extrapolation.` : "";
  say(byId("extrapolation"), note);
  const peek = byId("peek");
  byId("peek-text").textContent = `${formatPercent(p.probability)} · ${tierLabel(p.risk)}`;
  peek.dataset.risk = risk;
  peek.hidden = false;
}

const sigmoid = (z) => 1 / (1 + Math.exp(-z));
/** A change of probability in percentage points; small ones keep a second decimal so they never read "0.0". */
const points = (d) => `${d >= 0 ? "+" : "−"}${Math.abs(d * 100).toFixed(Math.abs(d) < 0.001 ? 2 : 1)} pts`;
const logOdds = (v) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(3)}`;

/** "Contract type month-to-month", "Tenure months of 3 months": a feature and this customer's value, in a phrase. */
function phrase(f, value) {
  if (!f) return "";
  if (isNumeric(f)) return `${featureLabel(f)} of ${formatValue(f, value)}`;
  const label = formatValue(f, value);
  const plain = /^[A-Z][^A-Z]*$/.test(label) ? label.charAt(0).toLowerCase() + label.slice(1) : label;
  return `${featureLabel(f)} ${plain}`;
}

/**
 * The explanation as steps from the base value to this customer's probability: the largest contributions first
 * (by log-odds), the rest as one step. Each step moves the probability from `from` to `to`.
 */
function steps(explanation) {
  const entries = Object.entries(explanation.contributions)
    .filter(([, v]) => typeof v === "number" && Number.isFinite(v))
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const shown = entries.slice(0, STEPS_SHOWN);
  const rest = entries.slice(STEPS_SHOWN);
  const parts = shown.map(([name, v]) => ({ name, v }));
  if (rest.length) parts.push({ name: null, v: rest.reduce((sum, [, v]) => sum + v, 0), count: rest.length });
  const base = Number(explanation.base_value);
  let z = Number.isFinite(base) ? base : 0;
  const out = [];
  for (const part of parts) {
    const from = sigmoid(z);
    z += part.v;
    out.push({ ...part, from, to: sigmoid(z) });
  }
  return { base: Number.isFinite(base) ? base : null, start: sigmoid(Number.isFinite(base) ? base : 0), end: sigmoid(z), raw: z, steps: out };
}

function wfRow(cls, attrs, name, sub, from, to, effect, title) {
  const bar = h("span", { class: "wf-bar" });
  bar.style.setProperty("--from", `${Math.min(from, to) * 100}%`);
  bar.style.setProperty("--to", `${Math.max(from, to) * 100}%`);
  return h(
    "li",
    { class: `wf-row ${cls}`, title, ...attrs },
    h("span", { class: "driver-name" }, name, sub ? h("span", { class: "driver-value" }, sub) : null),
    h("span", { class: "wf-track", "aria-hidden": "true" }, bar),
    h("span", { class: "driver-effect" }, effect),
  );
}

function showDrivers(explanation, instance, probability) {
  const list = clear(byId("drivers-list"));
  const byName = new Map(info.spec.features.map((f) => [f.name, f]));
  const wf = steps(explanation);
  list.style.setProperty("--t", `${Number(info.threshold) * 100}%`);
  list.append(
    wfRow("wf-anchor", { "data-anchor": "base", "data-probability": wf.start }, "Base value", "the model's starting point", wf.start, wf.start, pct(wf.start), wf.base === null ? "" : `log-odds ${wf.base.toFixed(3)}`),
  );
  for (const s of wf.steps) {
    const f = s.name ? byName.get(s.name) : null;
    const up = s.v > 0;
    const name = s.name ? (f ? featureLabel(f) : s.name) : `${s.count} other feature${s.count > 1 ? "s" : ""}`;
    const sub = s.name ? (f ? formatValue(f, instance[s.name]) : String(instance[s.name] ?? "")) : "combined";
    const title = `${name}: log-odds ${logOdds(s.v)}; probability ${pct(s.from)} → ${pct(s.to)}`;
    const row = wfRow(`driver ${up ? "up" : "down"}`, { "data-feature": s.name || undefined, "data-rest": s.name ? undefined : "", "data-log-odds": s.v, "data-from": s.from, "data-to": s.to }, name, sub, s.from, s.to, points(s.to - s.from), title);
    row.append(h("span", { class: "visually-hidden" }, up ? " raises the risk" : " lowers the risk"));
    list.append(row);
  }
  list.append(
    wfRow("wf-anchor wf-end", { "data-anchor": "prediction", "data-probability": wf.end }, "This customer", "the prediction", wf.end, wf.end, pct(probability), `log-odds ${wf.raw.toFixed(3)}`),
  );
  byId("drivers-note").textContent = `From the base value (${pct(wf.start)}) to this customer's ${pct(probability)}, largest effects first: red steps raise the churn probability, green steps lower it; the white line is the ${pct(Number(info.threshold))} churn threshold. Hover a step, or open the log-odds detail, for the model's own scale.`;
  // The model's own scale: contributions add up in log-odds, not in probability.
  const body = clear(byId("logodds-body"));
  const tr = (label, value, attrs) => h("tr", attrs, h("th", { scope: "row" }, label), h("td", { class: "num" }, value));
  if (wf.base !== null) body.append(tr("Base value", wf.base.toFixed(3)));
  for (const [name, v] of Object.entries(explanation.contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))) {
    const f = byName.get(name);
    body.append(tr(f ? featureLabel(f) : name, logOdds(v), { "data-feature": name }));
  }
  body.append(tr(`Sum (log-odds) → probability`, `${wf.raw.toFixed(3)} → ${pct(wf.end)}`, { class: "strong" }));
  byId("logodds").hidden = false;
  return { wf, byName };
}

/** Advice from what drives this prediction: the features that raise the risk most, then what the tier asks. */
function advise(p, drivers, instance) {
  const tier = TIERS[p.risk];
  if (!drivers) return tier ? tier.action : "";
  const named = drivers.wf.steps.filter((s) => s.name);
  const raising = named.filter((s) => s.to > s.from).sort((a, b) => b.to - b.from - (a.to - a.from));
  const lowering = named.filter((s) => s.to < s.from).sort((a, b) => a.to - a.from - (b.to - b.from));
  const say1 = (s) => phrase(drivers.byName.get(s.name), instance[s.name]);
  const parts = [];
  if (raising.length) {
    let text = `${say1(raising[0])} raises the risk most (${points(raising[0].to - raising[0].from)})`;
    if (raising[1]) text += `, followed by ${say1(raising[1])} (${points(raising[1].to - raising[1].from)})`;
    parts.push(`${text}.`);
  } else parts.push("No feature raises the risk above the base value.");
  if (lowering.length) parts.push(`${say1(lowering[0])} lowers it most (${points(lowering[0].to - lowering[0].from)}).`);
  if (tier) parts.push(tier.action);
  return parts.join(" ");
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

const DEBOUNCE_MS = 300;
let timer = null;
let busy = false; // a prediction is in flight: at most one at a time
let queued = null; // {explicit} of an update asked for while one was in flight
let retryWhenReady = false; // the last update failed because the predictor was unreachable

/** An update soon: edits within DEBOUNCE_MS of each other make one request. */
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(() => update(), DEBOUNCE_MS);
}

function reveal() {
  const title = byId("result-title");
  title.focus({ preventScroll: true });
  const box = byId("result").getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight - 120) {
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    byId("result").scrollIntoView({ block: "start", behavior: smooth ? "smooth" : "auto" });
  }
}

/** Validate the form and, when it is valid, predict and explain it. `explicit`: the Predict button (or Enter). */
async function update({ explicit = false } = {}) {
  clearTimeout(timer);
  timer = null;
  if (!info) return;
  if (busy) {
    queued = { explicit: explicit || Boolean(queued && queued.explicit) };
    return;
  }
  const { instance, errors } = readForm();
  for (const name of controls.keys()) setFieldError(name, errors[name] || "");
  const bad = Object.keys(errors);
  if (bad.length) {
    say(byId("form-error"), bad.length === 1 ? "Fix the highlighted field." : `Fix the ${bad.length} highlighted fields.`);
    markStale(FIX_FIELDS);
    if (explicit) controls.get(bad[0]).input.focus();
    return;
  }
  say(byId("form-error"), "");
  busy = true;
  retryWhenReady = false;
  const button = byId("predict-submit");
  button.setAttribute("aria-busy", "true");
  const state = byId("result").dataset.state;
  if (state === "done" || state === "stale") markStale();
  else {
    resetResult("loading");
    clearDrivers("Explaining…");
  }
  const [pred, expl] = await Promise.allSettled([predict([instance]), explain(instance)]);
  busy = false;
  button.removeAttribute("aria-busy");
  if (queued) {
    // The form changed while this was in flight: its answer is already outdated, ask for the current one.
    const next = queued;
    queued = null;
    update(next);
    return;
  }
  if (pred.status === "rejected") {
    resetResult("error");
    clearDrivers("No prediction, so no explanation.");
    if (pred.reason.unreachable) {
      retryWhenReady = true;
      say(byId("result-error"), `${pred.reason.message} The prediction updates by itself when the predictor is back.`);
    } else showServerErrors(pred.reason);
    return;
  }
  const p = pred.value[0];
  showPrediction(p);
  let drivers = null;
  if (expl.status === "fulfilled") drivers = showDrivers(expl.value, instance, p.probability);
  else clearDrivers(`Explanation unavailable: ${expl.reason.message}`);
  say(byId("advice"), advise(p, drivers, instance));
  if (explicit) reveal();
}

/** The predictor is Ready again: an error that only said "unreachable" goes, and the update it stopped runs. */
export function predictReady() {
  if (!retryWhenReady) return;
  retryWhenReady = false;
  say(byId("result-error"), "");
  update();
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
      schedule();
    });
    button.setAttribute("aria-pressed", "false");
    box.append(button);
  });
}

function defaults() {
  return Object.fromEntries(info.spec.features.map((f) => [f.name, defaultValue(f)]));
}

/** The tiers and the threshold in words, next to the gauge (bounds as data for anyone checking them). */
function explainTiers() {
  const t = Number(info.threshold);
  const b = tierBounds(info);
  const list = clear(byId("tier-legend"));
  list.dataset.high = String(b.high);
  list.dataset.medium = String(b.medium);
  const item = (risk, range, text) =>
    h("li", { "data-risk": risk }, h("span", { class: "badge badge-sm", "data-risk": risk }, tierLabel(risk)), h("span", { class: "tier-range" }, range), h("span", { class: "muted" }, text));
  list.append(
    item("high", `${pct(b.high)} or more`, "at or above the churn threshold: the verdict is “likely to churn”."),
    item("medium", `${pct(b.medium)} to ${pct(b.high)}`, "below the threshold, so “likely to stay”, but at least half of it: worth watching."),
    item("low", `below ${pct(b.medium)}`, "less than half the threshold: likely to stay."),
  );
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
  byId("threshold-note").textContent = `Churn verdict at ${formatPercent(t)} or more: the model's tuned threshold, marked on the gauge. The prediction updates as you edit.`;
  explainTiers();
  byId("predict-submit").disabled = false;
  byId("predict-reset").disabled = false;
  if (!wired) {
    wired = true;
    byId("predict-form").addEventListener("submit", (event) => {
      event.preventDefault();
      update({ explicit: true });
    });
    byId("peek").addEventListener("click", reveal);
    // The bar at the bottom (phones) stands in for the result only while the result itself is off-screen.
    new IntersectionObserver(([entry]) => byId("peek").classList.toggle("in-view", entry.isIntersecting), { threshold: 0.25 }).observe(byId("result"));
    byId("predict-reset").addEventListener("click", () => {
      clearTimeout(timer);
      setValues(defaults());
      for (const b of byId("presets").querySelectorAll(".chip")) b.setAttribute("aria-pressed", "false");
      resetResult("empty");
      clearDrivers("Run a prediction to see how each feature moves the churn probability.");
    });
  }
}
