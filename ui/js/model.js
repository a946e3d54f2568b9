// Model view: the model card from the info route.

import { byId, clear, h, icon } from "./dom.js";
import { categoryLabel, featureLabel, formatPercent, formatValue, isNumeric } from "./spec.js";

/** Metrics shown as bars (higher is better, 0..1), in this order. */
const BAR_METRICS = [
  ["f1", "F1"],
  ["precision", "Precision"],
  ["recall", "Recall"],
  ["accuracy", "Accuracy"],
  ["roc_auc", "ROC AUC"],
  ["pr_auc", "PR AUC"],
];
/** Probability-quality metrics, lower is better. */
const LOSS_METRICS = [
  ["brier", "Brier score"],
  ["log_loss", "Log loss"],
];

const num = (v) => typeof v === "number" && Number.isFinite(v);
const fmt3 = (v) => (num(v) ? v.toFixed(3) : "—");

function pct(el, name, share) {
  el.style.setProperty(name, `${Math.max(0, Math.min(1, share)) * 100}%`);
  return el;
}

function card(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

function facts(info) {
  const items = [
    ["Version", info.model_version !== undefined && info.model_version !== null ? `v${info.model_version}` : "—"],
    ["Decision threshold", num(info.threshold) ? formatPercent(info.threshold) : "—"],
    ["Trained", info.trained_at ? new Date(info.trained_at).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "—"],
    ["Training time", num(info.training_seconds) ? `${info.training_seconds.toFixed(1)} s` : "—"],
    ["Rows (train / test)", info.rows ? `${info.rows.train ?? "—"} / ${info.rows.test ?? "—"}` : "—"],
    ["Churn rate in training", num(info.base_rate) ? formatPercent(info.base_rate) : "—"],
  ];
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of items) dl.append(h("div", { class: "fact" }, h("dt", null, k), h("dd", { "data-fact": k }, String(v))));
  const hash = h("div", { class: "fact fact-wide" }, h("dt", null, "Training data SHA-256"), h("dd", { class: "mono hash" }, String(info.data_sha256 || "—")));
  dl.append(hash);
  if (info.run_id) dl.append(h("div", { class: "fact fact-wide" }, h("dt", null, "MLflow run"), h("dd", { class: "mono hash" }, String(info.run_id))));
  const section = card(`Registered model · ${info.model_name || "unnamed"}`, dl);
  section.classList.add("model-hero");
  const url = safeUrl(info.mlflow_url);
  if (url) {
    section.append(
      h("a", { class: "btn btn-ghost", href: url, target: "_blank", rel: "noopener noreferrer", "data-mlflow": "" }, icon("external"), h("span", null, "Open in MLflow")),
    );
  }
  return section;
}

/** Only http(s) links, never javascript: or data: URLs from the API. */
function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function metricBars(info) {
  const metrics = info.metrics || {};
  const baseline = info.baseline || {};
  const cis = info.confidence_intervals || {};
  const list = h("ul", { class: "metrics" });
  for (const [key, label] of BAR_METRICS) {
    const v = metrics[key];
    if (!num(v)) continue;
    const track = h("span", { class: "metric-track", "aria-hidden": "true" }, pct(h("span", { class: "metric-bar" }), "--w", v));
    const ci = Array.isArray(cis[key]) && num(cis[key][0]) && num(cis[key][1]) ? cis[key] : null;
    if (ci) {
      const whisker = h("span", { class: "metric-ci" });
      pct(whisker, "--lo", ci[0]);
      pct(whisker, "--hi", ci[1]);
      track.append(whisker);
    }
    const base = num(baseline[key]) ? baseline[key] : null;
    if (base !== null) track.append(pct(h("span", { class: "metric-base" }), "--x", base));
    const notes = [];
    if (ci) notes.push(`95% CI ${fmt3(ci[0])}–${fmt3(ci[1])}`);
    if (base !== null) {
      const d = v - base;
      notes.push(`baseline ${fmt3(base)} (${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(3)})`);
    }
    list.append(
      h(
        "li",
        { class: "metric", "data-metric": key },
        h("span", { class: "metric-name" }, label),
        track,
        h("span", { class: "metric-value", "data-value": String(v) }, fmt3(v)),
        h("span", { class: "metric-note" }, notes.join(" · ")),
      ),
    );
  }
  const losses = h("dl", { class: "facts facts-compact" });
  for (const [key, label] of LOSS_METRICS) {
    if (!num(metrics[key])) continue;
    const base = num(baseline[key]) ? h("span", { class: "fact-sub" }, `baseline ${fmt3(baseline[key])}`) : null;
    losses.append(h("div", { class: "fact" }, h("dt", null, `${label}, lower is better`), h("dd", { "data-metric": key }, fmt3(metrics[key]), base)));
  }
  const item = (swatch, text) => h("span", { class: "legend-item" }, h("span", { class: swatch, "aria-hidden": "true" }), text);
  const legend = h(
    "p",
    { class: "legend small muted" },
    item("legend-bar", "model on held-out customers"),
    item("legend-ci", "95% bootstrap interval"),
    item("legend-base", "logistic-regression baseline"),
  );
  return card("Test metrics", legend, list, losses);
}

function params(info) {
  const dl = h("dl", { class: "facts facts-compact" });
  for (const [k, v] of Object.entries(info.best_params || {})) {
    dl.append(h("div", { class: "fact" }, h("dt", { class: "mono" }, k), h("dd", null, typeof v === "object" ? JSON.stringify(v) : String(v))));
  }
  const cv = info.cv || {};
  for (const [k, v] of Object.entries(cv)) {
    if (num(v)) dl.append(h("div", { class: "fact" }, h("dt", null, `Cross-validated ${k.replace(/_/g, " ")}`), h("dd", null, fmt3(v))));
  }
  return card("Best parameters", dl);
}

function features(info) {
  const importance = info.feature_importance || {};
  const maxImp = Math.max(...Object.values(importance).filter(num), 1e-9);
  const rows = info.spec.features.map((f) => {
    const range = isNumeric(f)
      ? [num(f.min) ? formatValue(f, f.min) : "−∞", num(f.max) ? formatValue(f, f.max) : "∞"].join(" – ")
      : (f.values || []).map((v) => categoryLabel(f, v)).join(", ");
    const imp = importance[f.name];
    return h(
      "tr",
      { "data-feature": f.name },
      h("th", { scope: "row" }, h("span", { class: "feat-name" }, featureLabel(f)), h("span", { class: "mono small muted" }, f.name)),
      h("td", null, f.description || "—"),
      h("td", null, `${f.type}${f.nullable ? ", optional" : ""}`),
      h("td", null, range),
      h(
        "td",
        { class: "imp-cell" },
        num(imp)
          ? [h("span", { class: "imp-track", "aria-hidden": "true" }, pct(h("span", { class: "imp-bar" }), "--w", imp / maxImp)), h("span", { class: "small" }, formatPercent(imp))]
          : "—",
      ),
    );
  });
  const table = h(
    "table",
    { class: "table" },
    h("thead", null, h("tr", null, ["Feature", "Description", "Type", "Range / values", "Importance"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, rows),
  );
  return card("Features", h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Features" }, table));
}

export function renderModel(info) {
  const body = clear(byId("model-body"));
  body.append(h("div", { class: "model-col" }, facts(info), params(info)), metricBars(info), features(info));
}
