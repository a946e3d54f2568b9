// Monitoring view: live PSI per feature and live vs reference distributions, from the predictor's drift window.

import { getMonitoring } from "./api.js";
import { byId, clear, h } from "./dom.js";
import { featureLabel, formatPercent } from "./spec.js";

const REFRESH_MS = 4000;
/** The usual PSI bands: below 0.1 no real shift, 0.1–0.25 a moderate one, 0.25 and more a significant one. */
const BANDS = [
  { key: "stable", below: 0.1, label: "Stable", text: "below 0.1: no meaningful shift" },
  { key: "moderate", below: 0.25, label: "Moderate shift", text: "0.1 to 0.25: a moderate shift, worth watching" },
  { key: "significant", below: Infinity, label: "Significant shift", text: "0.25 or more: a significant shift; check the data feeding the model and consider retraining" },
];

let info = null;
let visible = false;
let timer = null;
let last = null;
let fetching = false;

const num = (v) => typeof v === "number" && Number.isFinite(v);
const band = (psi) => BANDS.find((b) => psi < b.below);

function bar(cls, share) {
  const el = h("span", { class: `mon-bar ${cls}` });
  el.style.setProperty("--w", `${Math.max(0, Math.min(1, share)) * 100}%`);
  return el;
}

function legend() {
  return h(
    "ul",
    { class: "psi-legend" },
    BANDS.map((b) => h("li", null, h("span", { class: "badge badge-sm", "data-band": b.key }, b.label), h("span", { class: "muted small" }, `PSI ${b.text}`))),
  );
}

function overview(data, enough) {
  const byName = new Map((info ? info.spec.features : []).map((f) => [f.name, f]));
  const scale = Math.max(0.5, ...data.features.map((f) => (num(f.psi) ? f.psi : 0)));
  const list = h("ul", { class: "psi-list", "aria-label": "PSI per feature" });
  list.style.setProperty("--b1", `${(0.1 / scale) * 100}%`);
  list.style.setProperty("--b2", `${(0.25 / scale) * 100}%`);
  for (const f of data.features) {
    const spec = byName.get(f.name);
    const b = num(f.psi) ? band(f.psi) : null;
    list.append(
      h(
        "li",
        { class: "psi-row", "data-feature": f.name, "data-psi": num(f.psi) ? f.psi : "", "data-band": b ? b.key : "none" },
        h("span", { class: "psi-name" }, spec ? featureLabel(spec) : f.name),
        h("span", { class: "psi-track", "aria-hidden": "true" }, bar(`psi-fill ${b ? `band-${b.key}` : ""}`, num(f.psi) ? f.psi / scale : 0)),
        h("span", { class: "psi-value" }, num(f.psi) ? f.psi.toFixed(3) : "—"),
        h("span", { class: "badge badge-sm", "data-band": b ? b.key : "none" }, b ? b.label : enough ? "not computed" : "collecting"),
      ),
    );
  }
  return list;
}

function distribution(f, enough) {
  const spec = info ? info.spec.features.find((x) => x.name === f.name) : null;
  const bins = Array.isArray(f.bins) ? f.bins : [];
  const top = Math.max(1e-9, ...bins.flatMap((b) => [num(b.reference) ? b.reference : 0, num(b.live) ? b.live : 0]));
  const b = num(f.psi) ? band(f.psi) : null;
  const rows = h("ul", { class: "dist" });
  for (const bin of bins) {
    const live = num(bin.live) ? bin.live : null;
    rows.append(
      h(
        "li",
        { class: "dist-row", "data-bin": String(bin.label) },
        h("span", { class: "dist-label" }, String(bin.label)),
        h(
          "span",
          { class: "dist-bars" },
          h("span", { class: "dist-pair" }, h("span", { class: "dist-track", "aria-hidden": "true" }, bar("ref", (bin.reference || 0) / top)), h("span", { class: "dist-num" }, num(bin.reference) ? formatPercent(bin.reference) : "—")),
          h("span", { class: "dist-pair" }, h("span", { class: "dist-track", "aria-hidden": "true" }, bar("live", (live || 0) / top)), h("span", { class: "dist-num", "data-live": live ?? "" }, live === null ? "—" : formatPercent(live))),
        ),
      ),
    );
  }
  return h(
    "section",
    { class: "card dist-card", "data-feature": f.name, "aria-label": `${spec ? featureLabel(spec) : f.name} distribution` },
    h(
      "div",
      { class: "card-head" },
      h("h3", null, spec ? featureLabel(spec) : f.name),
      h("span", { class: "psi-head" }, h("span", { class: "mono small" }, `PSI ${num(f.psi) ? f.psi.toFixed(3) : "—"}`), " ", h("span", { class: "badge badge-sm", "data-band": b ? b.key : "none" }, b ? b.label : enough ? "not computed" : "collecting")),
    ),
    h("p", { class: "muted small" }, f.kind === "categorical" ? "Share of customers per category." : "Share of customers per bin (bins cut at the training reference's quantiles)."),
    rows,
  );
}

function render(data) {
  const body = clear(byId("monitoring-body"));
  const features = Array.isArray(data.features) ? data.features : [];
  const rows = num(data.window_rows) ? data.window_rows : 0;
  const need = num(data.min_rows) ? data.min_rows : 0;
  const enough = rows >= need;
  const state = h(
    "section",
    { class: `card mon-state ${enough ? "" : "card-warn"}`.trim(), id: "monitoring-state", "data-enough": String(enough), "data-window-rows": rows, "data-rows-seen": data.rows_seen ?? "" },
    h("h2", null, enough ? "Drift window" : "Collecting the drift window"),
    h(
      "p",
      { class: "mon-count" },
      enough
        ? `${rows} recent row${rows === 1 ? "" : "s"} in the window (it keeps the last ${data.window}); PSI compares them with the training reference.`
        : `${rows} of ${need} rows needed before PSI is computed. Scored customers fill the window (it keeps the last ${data.window}).`,
    ),
    h("p", { class: "muted small" }, `Model v${data.model_version ?? "?"} · ${data.rows_seen ?? 0} row(s) scored since it was loaded · updated ${new Date().toLocaleTimeString("en-GB")}`),
    h("div", { class: "mon-bands" }, h("h3", { class: "tiers-title" }, "Reading PSI (population stability index)"), legend()),
  );
  body.append(state);
  if (!features.length) {
    body.append(h("p", { class: "placeholder" }, "The predictor reports no features to monitor."));
    return;
  }
  body.append(h("section", { class: "card", "aria-labelledby": "psi-title" }, h("h2", { id: "psi-title" }, "PSI per feature"), overview(data, enough)));
  const legendRow = h(
    "p",
    { class: "legend small muted" },
    h("span", { class: "legend-item" }, h("span", { class: "legend-swatch ref", "aria-hidden": "true" }), "training reference (upper bar)"),
    h("span", { class: "legend-item" }, h("span", { class: "legend-swatch live", "aria-hidden": "true" }), "live window (lower bar)"),
  );
  body.append(h("section", { class: "mon-dists", "aria-label": "Live vs reference distributions" }, h("h2", { class: "mon-dists-title" }, "Live vs reference, per feature"), legendRow, h("div", { class: "dist-grid" }, features.map((f) => distribution(f, enough)))));
}

function note(message) {
  const body = byId("monitoring-body");
  let el = body.querySelector("[data-mon-error]");
  if (!el) {
    el = h("p", { class: "form-error", role: "alert", "data-mon-error": "" });
    body.prepend(el);
  }
  el.textContent = message;
}

async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (!visible || !info || fetching) return;
  fetching = true;
  try {
    last = await getMonitoring();
    render(last);
  } catch (err) {
    const message = err.status === 404 ? "This predictor has no monitoring route (a version before live drift was added)." : `Monitoring unavailable: ${err.message} Retrying…`;
    if (last) note(message);
    else clear(byId("monitoring-body")).append(h("p", { class: "placeholder", "data-mon-error": "" }, message));
  } finally {
    fetching = false;
  }
  if (visible) timer = setTimeout(refresh, REFRESH_MS);
}

/** Poll only while the view is on screen. */
export function monitoringVisible(on) {
  visible = on;
  if (on) refresh();
  else {
    clearTimeout(timer);
    timer = null;
  }
}

export function renderMonitoring(modelInfo) {
  info = modelInfo;
  last = null;
  if (visible) refresh();
  else clear(byId("monitoring-body")).append(h("p", { class: "placeholder" }, "Open this view to load the drift window."));
}
