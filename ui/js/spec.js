// The dataset spec from the info route: labels, parsing and validation that mirror the predictor's checks.

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export const isNumeric = (f) => f.type === "integer" || f.type === "float";

/** "tenure_months" -> "Tenure months". */
export function featureLabel(f) {
  const words = String(f.name).replace(/_/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function categoryLabel(f, value) {
  const labels = f.labels || {};
  const label = labels[String(value)];
  return typeof label === "string" && label ? label : String(value);
}

/** Decimal places implied by a step (0.01 -> 2). */
export function decimals(f) {
  if (f.type === "integer") return 0;
  const step = Number(f.step);
  if (!Number.isFinite(step) || step <= 0) return 2;
  const text = String(step);
  if (text.includes("e-")) return Number(text.split("e-")[1]);
  return text.includes(".") ? text.split(".")[1].length : 0;
}

/** The unit after a number: "1 month", "2 months" (plural units of a few letters, e.g. "years", lose the s at 1). */
function withUnit(f, n, text) {
  if (!f.unit) return text;
  const singular = Math.abs(n) === 1 && /^[a-z]{4,}s$/.test(f.unit) ? f.unit.slice(0, -1) : f.unit;
  return `${text} ${singular}`;
}

export function formatValue(f, value) {
  if (value === null || value === undefined || value === "") return "unknown";
  if (!isNumeric(f)) return categoryLabel(f, value);
  const n = Number(value);
  return withUnit(f, n, n.toLocaleString("en-US", { maximumFractionDigits: decimals(f) }));
}

function bound(f, value) {
  const n = Number(value);
  return withUnit(f, n, n.toLocaleString("en-US", { maximumFractionDigits: 6 }));
}

/** The category value a text names (its value or its label, case-insensitive), or undefined. */
export function matchCategory(f, raw) {
  const text = String(raw).trim();
  for (const v of f.values || []) {
    if (String(v) === text) return v;
    if (typeof v === "number" && NUMBER.test(text) && Number(text) === v) return v;
  }
  const lower = text.toLowerCase();
  for (const v of f.values || []) {
    if (categoryLabel(f, v).toLowerCase() === lower) return v;
  }
  return undefined;
}

/**
 * The rules one value must pass, from the model's input JSON Schema (the info route's `input_schema`, derived on
 * the server from the same rules the predictor enforces): {nullable, integer, minimum, maximum, enum}.
 */
export function rulesOf(schema, f) {
  const p = schema && schema.properties ? schema.properties[f.name] : null;
  if (!p) return { nullable: Boolean(f.nullable), integer: f.type === "integer", minimum: f.min, maximum: f.max, enum: f.values };
  const types = Array.isArray(p.type) ? p.type : p.type ? [p.type] : [];
  const values = Array.isArray(p.enum) ? p.enum.filter((v) => v !== null) : null;
  const nullable = types.includes("null") || (Array.isArray(p.enum) && p.enum.includes(null));
  return { nullable, integer: types.includes("integer"), minimum: p.minimum, maximum: p.maximum, enum: values };
}

/**
 * Parse one raw text (form field or CSV cell) for a feature against its rules (`rulesOf`).
 * Returns {value} or {error}; an empty text is null when the feature is nullable.
 */
export function parseValue(f, raw, rules = rulesOf(null, f)) {
  const text = raw === null || raw === undefined ? "" : String(raw).trim();
  if (text === "") return rules.nullable ? { value: null } : { error: "A value is required." };
  if (!isNumeric(f)) {
    const v = matchCategory(f, text);
    if (v === undefined || (rules.enum && !rules.enum.includes(v))) {
      return { error: `Must be one of: ${(rules.enum || []).map((x) => categoryLabel(f, x)).join(", ")}.` };
    }
    return { value: v };
  }
  if (!NUMBER.test(text)) return { error: "Enter a number." };
  const n = Number(text);
  if (!Number.isFinite(n)) return { error: "Enter a finite number." };
  if (rules.integer && !Number.isInteger(n)) return { error: "Must be a whole number." };
  if (Number.isFinite(rules.minimum) && n < rules.minimum) return { error: `Must be at least ${bound(f, rules.minimum)}.` };
  if (Number.isFinite(rules.maximum) && n > rules.maximum) return { error: `Must be at most ${bound(f, rules.maximum)}.` };
  return { value: n };
}

/** Validate a {name: raw text} record against the input schema; returns {instance, errors: {name: message}}. */
export function parseRecord(features, record, schema = null) {
  const instance = {};
  const errors = {};
  for (const f of features) {
    const result = parseValue(f, record[f.name], rulesOf(schema, f));
    if ("error" in result) errors[f.name] = result.error;
    else instance[f.name] = result.value;
  }
  return { instance, errors };
}

/** Probability as the UI shows it everywhere: one decimal percent. */
export function formatPercent(p) {
  return `${(p * 100).toFixed(1)}%`;
}

/** What each risk tier asks of the person reading it; the tier itself always comes from the predictor. */
export const TIERS = {
  high: {
    label: "High risk",
    action: "Act now: contact this customer personally this week with a retention offer that answers these.",
  },
  medium: {
    label: "Medium risk",
    action: "Watch closely: the customer is predicted to stay, but these could push the risk past the threshold. Check in proactively.",
  },
  low: {
    label: "Low risk",
    action: "No action needed: keep the relationship healthy and look for upsell moments.",
  },
};

export function tierLabel(risk) {
  return TIERS[risk] ? TIERS[risk].label : risk ? `${risk} risk` : "Unknown risk";
}

/**
 * Where the tiers start, as the predictor publishes them (`risk_tiers` of the info route, from contract/risk.py): high
 * at the threshold (exactly when the verdict is churn), medium from half of it, low below. For the page's
 * explanations; the tier shown for a prediction is always the one the predictor returned.
 */
export function tierBounds(info) {
  return { high: Number(info.risk_tiers.high), medium: Number(info.risk_tiers.medium) };
}
