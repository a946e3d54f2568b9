// Model view: the model card from the info route: the gate's decision, the model against its baseline, the
// evaluation curves drawn from the numbers training computed, and where to read more (MLflow run, Grafana).

import { confusionChart, curveChart, pairs } from "./charts.js";
import { byId, clear, h, icon } from "./dom.js";
import { qualityCard } from "./quality.js";
import { categoryLabel, featureLabel, formatPercent, formatValue, isNumeric } from "./spec.js";

/** Metrics compared with the baseline, in this order; `lower`: lower is better. */
const METRICS = [
  ["roc_auc", "ROC AUC"],
  ["pr_auc", "PR AUC"],
  ["f1", "F1"],
  ["precision", "Precision"],
  ["recall", "Recall"],
  ["accuracy", "Accuracy"],
  ["brier", "Brier score", true],
  ["log_loss", "Log loss", true],
  ["ece", "Calibration error (ECE)", true],
];
const NOT_RECORDED = "Not recorded for this version.";

const num = (v) => typeof v === "number" && Number.isFinite(v);
const fmt3 = (v) => (num(v) ? v.toFixed(3) : "—");
const sentence = (text) => (text ? `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? "" : "."}` : "");

function pct(el, name, share) {
  el.style.setProperty(name, `${Math.max(0, Math.min(1, share)) * 100}%`);
  return el;
}

function card(title, attrs, ...children) {
  return h("section", { class: "card", ...attrs }, h("h2", null, title), ...children);
}

const missing = (what) => h("p", { class: "muted not-recorded", "data-missing": what }, NOT_RECORDED);

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

function link(url, text, data) {
  return h("a", { class: "btn btn-ghost", href: url, target: "_blank", rel: "noopener noreferrer", [`data-${data}`]: "" }, icon("external"), h("span", null, text));
}

const family = (info) => (typeof info.model_family === "string" && info.model_family ? info.model_family : "model");

/** The prominent notice: the simple baseline did better than the model being served. */
function baselineNotice(info) {
  if (info.baseline_beats_candidate !== true) return null;
  const why = typeof info.baseline_comparison === "string" ? sentence(info.baseline_comparison) : "The logistic baseline scores better than the served model.";
  return h(
    "section",
    { class: "notice notice-warn", id: "baseline-notice", role: "note", "aria-labelledby": "baseline-notice-title" },
    icon("alert", "icon-lg"),
    h(
      "div",
      null,
      h("h2", { id: "baseline-notice-title" }, "The baseline beats this model"),
      h("p", null, why),
      h("p", { class: "small" }, "A simpler logistic regression would serve these customers at least as well; see the comparison below before trusting the extra complexity."),
    ),
  );
}

function facts(info) {
  const items = [
    ["Version", info.model_version !== undefined && info.model_version !== null ? `v${info.model_version}` : "—"],
    ["Model family", family(info)],
    ["Decision threshold", num(info.threshold) ? formatPercent(info.threshold) : "—"],
    ["Trained", info.trained_at ? new Date(info.trained_at).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "—"],
    ["Training time", num(info.training_seconds) ? `${info.training_seconds.toFixed(1)} s` : "—"],
    ["Rows (train / test)", info.rows ? `${info.rows.train ?? "—"} / ${info.rows.test ?? "—"}` : "—"],
    ["Churn rate in training", num(info.base_rate) ? formatPercent(info.base_rate) : "—"],
  ];
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of items) dl.append(h("div", { class: "fact" }, h("dt", null, k), h("dd", { "data-fact": k }, String(v))));
  dl.append(h("div", { class: "fact fact-wide" }, h("dt", null, "Training data SHA-256"), h("dd", { class: "mono hash" }, String(info.data_sha256 || "—"))));
  if (info.run_id) dl.append(h("div", { class: "fact fact-wide" }, h("dt", null, "MLflow run"), h("dd", { class: "mono hash" }, String(info.run_id))));
  const section = card(`Registered model · ${info.model_name || "unnamed"}`, { class: "card model-hero" }, dl);
  const links = h("div", { class: "row-actions" });
  const run = safeUrl(info.mlflow_run_url);
  const version = safeUrl(info.mlflow_url);
  const grafana = safeUrl(info.grafana_url);
  if (run) links.append(link(run, "Open the MLflow run (plots, metrics)", "mlflow-run"));
  if (version) links.append(link(version, run ? "Model version in MLflow" : "Open in MLflow", "mlflow"));
  if (grafana) links.append(link(grafana, "Open the Grafana dashboard", "grafana"));
  if (links.childElementCount) section.append(links);
  if (!run) section.append(h("p", { class: "muted small", "data-missing": "mlflow_run_url" }, "Link to the MLflow run: not recorded for this version."));
  return section;
}

/** The gate's decision and every reason it gave (ok / warn / fail). */
function gate(info) {
  const g = info.gate;
  if (!g || typeof g.passed !== "boolean") return card("Promotion gate", { id: "gate" }, missing("gate"));
  const list = h("ul", { class: "reasons" });
  for (const reason of Array.isArray(g.reasons) ? g.reasons : []) {
    const text = String(reason);
    const m = /^(ok|warn|fail|error)\s*:\s*/i.exec(text);
    const level = m ? m[1].toLowerCase().replace("error", "fail") : "info";
    const mark = { ok: "✓", warn: "!", fail: "✗", info: "•" }[level];
    list.append(h("li", { class: `reason reason-${level}`, "data-level": level }, h("span", { class: "reason-mark", "aria-hidden": "true" }, mark), h("span", null, h("span", { class: "visually-hidden" }, `${level}: `), m ? text.slice(m[0].length) : text)));
  }
  const champion = g.champion_version ? `Compared with the champion then serving, v${g.champion_version}.` : "There was no champion to compare with.";
  return card(
    "Promotion gate",
    { id: "gate", "data-passed": String(g.passed) },
    h("p", { class: `gate-verdict ${g.passed ? "gate-pass" : "gate-fail"}` }, g.passed ? "Passed: this version was allowed to become champion." : "Failed: this version did not pass the gate."),
    h("p", { class: "muted small" }, champion),
    list,
  );
}

/** The model and its logistic baseline side by side, the better of the two marked on every metric. */
function comparison(info) {
  const metrics = info.metrics || {};
  const baseline = info.baseline || {};
  const cis = info.confidence_intervals || {};
  const name = family(info);
  const rows = METRICS.filter(([key]) => num(metrics[key]));
  if (!rows.length) return card("Model vs baseline", { id: "comparison" }, missing("metrics"));
  const spread = Math.max(1e-9, ...rows.map(([key]) => (num(baseline[key]) ? Math.abs(metrics[key] - baseline[key]) : 0)));
  const body = h("tbody");
  let modelWins = 0;
  let baseWins = 0;
  for (const [key, label, lower] of rows) {
    const v = metrics[key];
    const b = num(baseline[key]) ? baseline[key] : null;
    const ci = Array.isArray(cis[key]) && num(cis[key][0]) && num(cis[key][1]) ? cis[key] : null;
    let winner = "none";
    if (b !== null) {
      const better = lower ? v < b : v > b;
      winner = Math.abs(v - b) < 5e-4 ? "tie" : better ? "model" : "baseline";
      if (winner === "model") modelWins += 1;
      if (winner === "baseline") baseWins += 1;
    }
    const d = b === null ? null : v - b;
    const delta = h("span", { class: "delta" });
    if (d !== null) {
      const track = h("span", { class: `delta-track delta-${winner}`, "aria-hidden": "true" }, pct(h("span", { class: "delta-bar" }), "--w", Math.abs(d) / spread));
      delta.append(track, h("span", { class: "delta-num" }, `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(3)}`));
    }
    const winLabel = { model: name, baseline: "baseline", tie: "tie", none: "—" }[winner];
    body.append(
      h(
        "tr",
        { class: "metric", "data-metric": key, "data-winner": winner },
        h("th", { scope: "row" }, label, lower ? h("span", { class: "fact-sub" }, "lower is better") : null),
        h("td", { class: `num ${winner === "model" ? "win" : ""}`.trim(), "data-label": name }, h("span", { class: "metric-value", "data-value": String(v) }, fmt3(v)), ci ? h("span", { class: "fact-sub metric-ci" }, `95% CI ${fmt3(ci[0])}–${fmt3(ci[1])}`) : null),
        h("td", { class: `num ${winner === "baseline" ? "win" : ""}`.trim(), "data-label": "Baseline" }, h("span", { class: "metric-base", "data-value": b === null ? "" : String(b) }, fmt3(b))),
        h("td", { "data-label": "Difference" }, delta),
        h("td", { "data-label": "Better" }, h("span", { class: "badge badge-sm winner", "data-winner": winner }, winner === "model" || winner === "baseline" ? `★ ${winLabel}` : winLabel)),
      ),
    );
  }
  const table = h(
    "table",
    { class: "table table-stack compare" },
    h("caption", { class: "visually-hidden" }, `Test metrics of the ${name} model and the logistic baseline on the same held-out rows`),
    h("thead", null, h("tr", null, ["Metric", name, "Baseline", `Difference (${name} − baseline)`, "Better"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  const summary = baseWins > modelWins ? `The baseline is better on ${baseWins} of ${rows.length} metrics.` : `The ${name} model is better on ${modelWins} of ${rows.length} metrics.`;
  return card(
    "Model vs baseline",
    { id: "comparison", class: "card card-wide" },
    h("p", { class: "muted small" }, `On the same ${info.rows && info.rows.test ? `${info.rows.test} ` : ""}held-out customers. ${summary} Difference bars are scaled to the largest gap, so small gaps stay visible.`),
    h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Model vs baseline" }, table),
  );
}

function aucOf(points) {
  let area = 0;
  for (let i = 1; i < points.length; i += 1) area += ((points[i][0] - points[i - 1][0]) * (points[i][1] + points[i - 1][1])) / 2;
  return area;
}

function curves(info) {
  const c = info.curves && typeof info.curves === "object" ? info.curves : null;
  const m = info.metrics || {};
  const b = info.baseline || {};
  const name = family(info);
  const chartCard = (title, key, chart, caption) =>
    card(title, { class: "card chart-card", "data-chart": key }, chart ? [h("div", { class: "chart" }, chart), h("p", { class: "muted small" }, caption)] : missing(key));

  const roc = c && c.roc ? pairs(c.roc.fpr, c.roc.tpr) : [];
  const baseRoc = c && c.baseline_roc ? pairs(c.baseline_roc.fpr, c.baseline_roc.tpr) : [];
  const rocAuc = num(m.roc_auc) ? m.roc_auc : aucOf(roc);
  const rocChart = roc.length
    ? curveChart({
        label: `ROC curve: ${name} AUC ${fmt3(rocAuc)}${baseRoc.length ? `, baseline AUC ${fmt3(num(b.roc_auc) ? b.roc_auc : aucOf(baseRoc))}` : ""}`,
        xLabel: "false positive rate",
        yLabel: "true positive rate",
        reference: [[0, 0], [1, 1]],
        series: [
          { points: baseRoc, cls: "line-base", key: "baseline_roc" },
          { points: roc, cls: "line-model", key: "roc" },
        ],
      })
    : null;

  const pr = c && c.pr ? pairs(c.pr.recall, c.pr.precision) : [];
  const prChart = pr.length
    ? curveChart({
        label: `Precision-recall curve: PR AUC ${fmt3(m.pr_auc)}; churn rate ${num(info.base_rate) ? formatPercent(info.base_rate) : "unknown"}`,
        xLabel: "recall",
        yLabel: "precision",
        reference: num(info.base_rate) ? [[0, info.base_rate], [1, info.base_rate]] : null,
        series: [{ points: pr, cls: "line-model", key: "pr" }],
      })
    : null;

  const cal = c && c.calibration ? c.calibration : null;
  const calPoints = cal ? pairs(cal.mean_predicted, cal.observed) : [];
  const counts = cal && Array.isArray(cal.count) ? cal.count : [];
  const most = Math.max(1, ...counts.filter(num));
  const calChart = calPoints.length
    ? curveChart({
        label: `Calibration: observed churn rate against the mean predicted probability in ${calPoints.length} bins; brier score ${fmt3(m.brier)}`,
        xLabel: "mean predicted probability",
        yLabel: "observed churn rate",
        reference: [[0, 0], [1, 1]],
        series: [{ points: calPoints, cls: "line-model", key: "calibration" }],
        dots: calPoints.map(([x, y], i) => ({ x, y, r: 2.5 + 4 * Math.sqrt((num(counts[i]) ? counts[i] : 0) / most), title: `predicted ${formatPercent(x)}, observed ${formatPercent(y)}${num(counts[i]) ? `, ${counts[i]} customers` : ""}` })),
      })
    : null;

  const cm = c && c.confusion_matrix && ["tn", "fp", "fn", "tp"].every((k) => num(c.confusion_matrix[k])) ? c.confusion_matrix : null;
  const cmChart = cm
    ? confusionChart(cm, `Confusion matrix at the ${num(info.threshold) ? formatPercent(info.threshold) : ""} threshold: ${cm.tn} true negatives, ${cm.fp} false alarms, ${cm.fn} missed churners, ${cm.tp} caught churners`)
    : null;

  const item = (swatch, text) => h("span", { class: "legend-item" }, h("span", { class: `legend-line ${swatch}`, "aria-hidden": "true" }), text);
  return h(
    "div",
    { class: "chart-grid-wrap card-wide" },
    chartCard("ROC curve", "roc", rocChart, h("span", { class: "legend" }, item("line-model", `${name} (AUC ${fmt3(rocAuc)})`), baseRoc.length ? item("line-base", `baseline (AUC ${fmt3(b.roc_auc)})`) : null, item("line-ref", "chance"))),
    chartCard("Precision and recall", "pr", prChart, h("span", { class: "legend" }, item("line-model", `${name} (PR AUC ${fmt3(m.pr_auc)})`), num(info.base_rate) ? item("line-ref", `churn rate ${formatPercent(info.base_rate)} (a random guess)`) : null)),
    chartCard("Calibration", "calibration", calChart, "Points on the dashed diagonal mean the probabilities can be read as rates; bigger points hold more customers."),
    chartCard("Confusion matrix", "confusion_matrix", cmChart, `Held-out customers at the ${num(info.threshold) ? formatPercent(info.threshold) : "tuned"} threshold; rows are what happened, columns what the model said.`),
  );
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
  const section = card("Best parameters", null, dl);
  const warnings = Array.isArray(info.model_warnings) ? info.model_warnings.filter((w) => typeof w === "string" && w) : [];
  if (warnings.length) section.append(h("ul", { class: "reasons" }, warnings.map((w) => h("li", { class: "reason reason-warn" }, h("span", { class: "reason-mark", "aria-hidden": "true" }, "!"), h("span", null, w)))));
  return section;
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
      h("th", { scope: "row", "data-label": "Feature" }, h("span", { class: "feat-name" }, featureLabel(f)), h("span", { class: "mono small muted" }, f.name)),
      h(
        "td",
        { class: "imp-cell", "data-label": "Importance" },
        num(imp)
          ? [h("span", { class: "imp-track", "aria-hidden": "true" }, pct(h("span", { class: "imp-bar" }), "--w", imp / maxImp)), h("span", { class: "small", "data-importance": imp }, formatPercent(imp))]
          : "—",
      ),
      h("td", { "data-label": "Description" }, f.description || "—"),
      h("td", { "data-label": "Type" }, `${f.type}${f.nullable ? ", optional" : ""}`),
      h("td", { "data-label": "Range / values" }, range),
    );
  });
  const table = h(
    "table",
    { class: "table table-stack" },
    h("thead", null, h("tr", null, ["Feature", "Importance", "Description", "Type", "Range / values"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, rows),
  );
  const method = typeof info.feature_importance_method === "string" ? h("p", { class: "muted small" }, `Importance: ${info.feature_importance_method}.`) : null;
  return card("Features", { class: "card card-wide" }, method, h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Features" }, table));
}

export function renderModel(info) {
  const body = clear(byId("model-body"));
  const notice = baselineNotice(info);
  if (notice) body.append(notice);
  body.append(h("div", { class: "model-col" }, facts(info), params(info)), gate(info), comparison(info), qualityCard(), curves(info), features(info));
}
