// Entry point: routing between views, the readiness pill, and loading the model card everything derives from.

import { getInfo, modelName, readiness, routes } from "./api.js";
import { batchReady, renderBatch } from "./batch.js";
import { byId, h, say } from "./dom.js";
import { renderModel } from "./model.js";
import { monitoringVisible, renderMonitoring } from "./monitoring.js";
import { predictReady, renderPredict } from "./predict.js";
import { qualityVisible } from "./quality.js";

const VIEWS = ["predict", "batch", "model", "monitoring", "about"];
const POLL_MS = 5000;
/** Before the first model card arrives there is nothing to show: ask again sooner. */
const WAITING_POLL_MS = 2000;
let info = null;
let inflight = null;
let state = "connecting";
let infoError = "";
let attempts = 0;

function route() {
  const name = window.location.hash.replace(/^#\/?/, "");
  if (!VIEWS.includes(name) && name !== "") return; // e.g. the skip link: keep the current view
  const view = VIEWS.includes(name) ? name : "predict";
  for (const section of document.querySelectorAll("section.view")) section.hidden = section.dataset.view !== view;
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.title = `${view.charAt(0).toUpperCase()}${view.slice(1)} · ChurnGuard`;
  monitoringVisible(view === "monitoring");
  qualityVisible(view === "model");
}

function setStatus(next) {
  state = next;
  const pill = byId("status");
  pill.dataset.state = next;
  const version = info && info.model_version !== undefined && info.model_version !== null ? ` · v${info.model_version}` : "";
  const text = { ready: `Ready${version}`, loading: "Loading model", offline: "Offline" }[next] || "Connecting…";
  byId("status-text").textContent = text;
  pill.title = { ready: "The model is loaded and serving", loading: "The predictor is up and loading the model", offline: "The predictor cannot be reached" }[next] || "";
}

/** One sentence for the banner and the views' placeholders: what is wrong now and that the page keeps trying. */
function waitingMessage() {
  const every = `${(info ? POLL_MS : WAITING_POLL_MS) / 1000} s`;
  if (state === "offline") {
    return info
      ? `The predictor is unreachable. Predictions and batch scoring resume by themselves when it is back (checking every ${every}).`
      : `The predictor is unreachable, so the model's input spec cannot be loaded yet. Retrying every ${every} (attempt ${attempts})…`;
  }
  if (state === "loading") {
    return info ? "The predictor is loading the model; predictions resume when it is ready." : `The predictor is up and loading the model. Retrying every ${every}…`;
  }
  if (!info && infoError) return `The model card could not be loaded: ${infoError} Retrying every ${every}…`;
  return "";
}

/** The banner and, before the first model card, every view's placeholder say the same current thing. */
function showConnection() {
  const message = waitingMessage();
  say(byId("app-banner-text"), message);
  byId("app-banner").hidden = !message;
  byId("app-banner").dataset.state = state;
  if (info) return;
  const placeholder = message || "Loading the model's input spec…";
  for (const node of document.querySelectorAll("[data-waiting]")) node.textContent = placeholder;
}

function validInfo(data) {
  return data && data.spec && Array.isArray(data.spec.features) && data.spec.features.length > 0;
}

/** Fetch the model card and (re)render the views when it changed; concurrent callers share one request. */
function loadInfo() {
  inflight = inflight || fetchInfo().finally(() => {
    inflight = null;
  });
  return inflight;
}

async function fetchInfo() {
  try {
    const data = await getInfo();
    if (!validInfo(data)) throw new Error("The model card has no feature spec.");
    const changed = !info || info.model_version !== data.model_version || info.trained_at !== data.trained_at;
    info = data;
    infoError = "";
    if (changed) {
      renderPredict(info);
      renderBatch(info);
      renderModel(info);
      renderMonitoring(info);
      byId("footer-model").textContent = `${info.model_name || modelName()} v${info.model_version ?? "?"}`;
      endpoints();
    }
  } catch (err) {
    infoError = err.message;
  }
}

let polls = 0;

async function poll() {
  const previous = state;
  const next = await readiness();
  polls += 1;
  if (!info) attempts += 1;
  // Refresh the card when the model becomes ready and now and then (a reload may serve a new version).
  const refresh = !info || previous !== "ready" || polls % 12 === 0;
  if (next === "ready" && refresh) await loadInfo();
  setStatus(next);
  showConnection();
  // Back to Ready: errors that only said "unreachable" are gone, and what they interrupted runs again.
  if (next === "ready" && previous !== "ready" && info) {
    predictReady();
    batchReady();
  }
  setTimeout(poll, info ? POLL_MS : WAITING_POLL_MS);
}

/** The About page's route table, with the served model's name once the server has said it. */
function endpoints() {
  const ROUTES = routes();
  const rows = [
    ["GET", ROUTES.info, "Model card: spec, metrics, curves, gate, presets (this page is built from it)"],
    ["GET", ROUTES.monitoring, "Live drift: PSI and live vs reference distributions per feature"],
    ["GET", ROUTES.quality, "Live quality: test, estimated and realized metrics per version; the challenger in shadow"],
    ["POST", ROUTES.feedback, 'Outcomes of earlier predictions: {"outcomes": [{"prediction_id": id, "label": 0 or 1}]}'],
    ["POST", ROUTES.predict, 'V1 predict: {"instances": [{feature: value}]} → probability, verdict, risk'],
    ["POST", ROUTES.explain, "Per-feature contributions in log-odds, with the base value"],
    ["GET", ROUTES.model, "V1 model status (200 once loaded)"],
    ["GET", ROUTES.ready, "Readiness (503 while the model loads)"],
    ["GET", ROUTES.live, "Liveness"],
    ["GET", ROUTES.v2Metadata, "V2 (Open Inference Protocol) metadata"],
    ["POST", ROUTES.v2Infer, "V2 inference"],
  ];
  const body = byId("endpoints");
  body.replaceChildren();
  for (const [method, path, what] of rows) {
    body.append(
      h(
        "tr",
        null,
        h("td", { "data-label": "Method" }, h("span", { class: `method method-${method.toLowerCase()}` }, method)),
        h("td", { "data-label": "Path" }, h("code", { class: "path" }, path)),
        h("td", { "data-label": "Purpose" }, what),
      ),
    );
  }
}

function start() {
  endpoints();
  window.addEventListener("hashchange", route);
  document.querySelector("[data-skip]").addEventListener("click", (e) => {
    e.preventDefault();
    byId("main").focus();
  });
  route();
  poll();
}

start();
