// Live quality card of the Model view: the served version's test metrics beside its estimated (from served
// probabilities) and realized (from outcomes sent back) ones, whether the estimate can be trusted, and the
// challenger in shadow. From the quality route, polled while the Model view is on screen (docs/quality.md).

import { getQuality } from "./api.js";
import { clear, h } from "./dom.js";

const REFRESH_MS = 5000;
/** Rows of the table; `lower`: lower is better. */
const METRICS = [
  ["f1", "F1"],
  ["roc_auc", "ROC AUC"],
  ["precision", "Precision"],
  ["recall", "Recall"],
  ["brier", "Brier score", true],
];

let slot = null;
let visible = false;
let timer = null;
let fetching = false;
let last = null;

const num = (v) => typeof v === "number" && Number.isFinite(v);
const fmt3 = (v) => (num(v) ? v.toFixed(3) : "—");
const count = (v) => (num(v) ? Math.round(v).toLocaleString("en-GB") : "0");
const plural = (n, one) => `${count(n)} ${one}${Math.round(n) === 1 ? "" : "s"}`;

/** holds | broken | unknown, with the sentence that explains it. */
function trust(calibration) {
  const c = calibration || {};
  if (c.holds === true) {
    return ["holds", `The estimate holds: the calibration error on ${plural(c.labelled_rows, "labelled row")} is ${fmt3(c.live_ece)}, within ${fmt3(c.tolerance)} of the test split's ${fmt3(c.test_ece)}.`];
  }
  if (c.holds === false) {
    return ["broken", `The estimate is not to be trusted: the calibration error on ${plural(c.labelled_rows, "labelled row")} is ${fmt3(c.live_ece)}, more than ${fmt3(c.tolerance)} above the test split's ${fmt3(c.test_ece)}. The relation between features and churn may have changed; read the realized figures.`];
  }
  return ["unknown", `Not known yet whether the estimate holds: ${count(c.labelled_rows)} of ${count(c.min_rows)} labelled rows needed to check calibration.`];
}

function table(test, served) {
  const body = h("tbody");
  for (const [key, label, lower] of METRICS) {
    const cell = (v, cls, src) => h("td", { class: "num", "data-label": src, "data-source": src.toLowerCase() }, h("span", { class: cls, "data-value": num(v) ? String(v) : "" }, fmt3(v)));
    body.append(
      h(
        "tr",
        { "data-metric": key },
        h("th", { scope: "row" }, label, lower ? h("span", { class: "fact-sub" }, "lower is better") : null),
        cell(test[key], "q-test", "Test"),
        cell(served.estimated[key], "q-estimated", "Estimated"),
        cell(served.realized[key], "q-realized", "Realized"),
      ),
    );
  }
  const head = h(
    "tr",
    null,
    h("th", { scope: "col" }, "Metric"),
    h("th", { scope: "col" }, "Test split"),
    h("th", { scope: "col" }, "Estimated", h("span", { class: "fact-sub", "data-rows": "estimated" }, plural(served.estimated.rows, "row"))),
    h("th", { scope: "col" }, "Realized", h("span", { class: "fact-sub", "data-rows": "realized" }, plural(served.realized.rows, "outcome"))),
  );
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Live quality" },
    h("table", { class: "table table-stack quality" }, h("caption", { class: "visually-hidden" }, "Test, estimated and realized metrics of the served version"), h("thead", null, head), body),
  );
}

function challengerLine(shadow) {
  if (!shadow) return h("p", { class: "muted small", "data-challenger": "none" }, "No challenger in shadow (give a version the challenger alias to score it beside the champion).");
  const against = Array.isArray(shadow.against) ? shadow.against : [];
  const rows = against.reduce((n, a) => n + (num(a.rows) ? a.rows : 0), 0);
  const same = against.reduce((n, a) => n + (num(a.rows) && num(a.agreement) ? a.rows * a.agreement : 0), 0);
  const agreement = rows ? ` · same verdict on ${((100 * same) / rows).toFixed(1)}%` : "";
  return h("p", { class: "q-challenger", "data-challenger": String(shadow.model_version) }, `Challenger v${shadow.model_version} in shadow: ${plural(rows, "row")} scored by this replica${agreement}.`);
}

function render(data) {
  const versions = Array.isArray(data.versions) ? data.versions : [];
  const served = versions.find((v) => v && v.serving);
  const out = [];
  if (!served || !served.estimated || !served.realized) {
    out.push(h("p", { class: "placeholder", "data-quality-error": "" }, "The predictor's quality report has no served version."));
    return out;
  }
  const [state, why] = trust(served.calibration);
  const labels = { holds: "Estimate holds", broken: "Estimate broken", unknown: "Not checked yet" };
  out.push(h("p", { class: "q-trust", "data-trust": state }, h("span", { class: "badge badge-sm", "data-trust": state }, labels[state]), " ", h("span", null, why)));
  if (!num(served.estimated.rows) || served.estimated.rows <= 0) {
    out.push(h("p", { class: "muted", "data-quality-empty": "" }, "No customers scored by this replica since it loaded this version: the live figures appear with traffic."));
  }
  out.push(table(data.test && typeof data.test === "object" ? data.test : {}, served));
  out.push(challengerLine(data.challenger));
  out.push(h("p", { class: "muted small" }, `Version v${served.model_version} · this replica's share (Grafana's Live quality row adds up every replica) · updated ${new Date().toLocaleTimeString("en-GB")}`));
  return out;
}

function show(children) {
  if (slot) clear(slot.querySelector("[data-quality-body]")).append(...children);
}

async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (!visible || !slot || fetching) return;
  fetching = true;
  try {
    last = await getQuality();
    show(render(last));
  } catch (err) {
    const message = err.status === 404 ? "This predictor has no quality route (a version from before live quality)." : `Live quality unavailable: ${err.message} Retrying…`;
    const note = h("p", { class: last ? "form-error" : "placeholder", role: last ? "alert" : null, "data-quality-error": "" }, message);
    show(last && err.status !== 404 ? [note, ...render(last)] : [note]);
  } finally {
    fetching = false;
  }
  if (visible) timer = setTimeout(refresh, REFRESH_MS);
}

/** The card, empty until the Model view is on screen; rebuilt with every model card. */
export function qualityCard() {
  last = null;
  slot = h(
    "section",
    { class: "card card-wide", id: "live-quality", "aria-labelledby": "live-quality-title" },
    h("h2", { id: "live-quality-title" }, "Live quality"),
    h("p", { class: "muted small" }, "Estimated from the probabilities served, before any label; realized from the outcomes sent back to the feedback route."),
    h("div", { "data-quality-body": "" }, h("p", { class: "placeholder" }, "Loading live quality…")),
  );
  if (visible) refresh();
  return slot;
}

/** Poll only while the Model view is on screen. */
export function qualityVisible(on) {
  visible = on;
  if (on) refresh();
  else {
    clearTimeout(timer);
    timer = null;
  }
}
