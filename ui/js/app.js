// Entry point: routing between views, the readiness pill, and loading the model card everything derives from.

import { getInfo, modelName, readiness, routes } from "./api.js";
import { renderBatch } from "./batch.js";
import { byId, h, say } from "./dom.js";
import { renderModel } from "./model.js";
import { renderPredict } from "./predict.js";

const VIEWS = ["predict", "batch", "model", "about"];
const POLL_MS = 5000;
let info = null;
let inflight = null;

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
}

function setStatus(state) {
  const pill = byId("status");
  pill.dataset.state = state;
  const version = info && info.model_version !== undefined && info.model_version !== null ? ` · v${info.model_version}` : "";
  const text = { ready: `Ready${version}`, loading: "Loading model", offline: "Offline" }[state] || "Connecting…";
  byId("status-text").textContent = text;
  pill.title = { ready: "The model is loaded and serving", loading: "The predictor is up and loading the model", offline: "The predictor cannot be reached" }[state] || "";
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
    if (changed) {
      renderPredict(info);
      renderBatch(info);
      renderModel(info);
      byId("footer-model").textContent = `${info.model_name || modelName()} v${info.model_version ?? "?"}`;
      endpoints();
    }
    say(byId("app-banner-text"), "");
    byId("app-banner").hidden = true;
  } catch (err) {
    if (!info) {
      byId("app-banner-text").textContent = `Waiting for the model card: ${err.message}`;
      byId("app-banner").hidden = false;
    }
  }
}

let polls = 0;

async function poll() {
  const state = await readiness();
  polls += 1;
  // Refresh the card when the model becomes ready and now and then (a reload may serve a new version).
  const refresh = !info || byId("status").dataset.state !== "ready" || polls % 12 === 0;
  if (state === "ready" && refresh) await loadInfo();
  setStatus(state);
  setTimeout(poll, POLL_MS);
}

/** The About page's route table, with the served model's name once the server has said it. */
function endpoints() {
  const ROUTES = routes();
  const rows = [
    ["GET", ROUTES.info, "Model card: spec, metrics, presets (this page is built from it)"],
    ["POST", ROUTES.predict, 'V1 predict: {"instances": [{feature: value}]} → probability, verdict, risk'],
    ["POST", ROUTES.explain, "Per-feature contributions in log-odds"],
    ["GET", ROUTES.model, "V1 model status (200 once loaded)"],
    ["GET", ROUTES.ready, "Readiness (503 while the model loads)"],
    ["GET", ROUTES.live, "Liveness"],
    ["GET", ROUTES.v2Metadata, "V2 (Open Inference Protocol) metadata"],
    ["POST", ROUTES.v2Infer, "V2 inference"],
  ];
  const body = byId("endpoints");
  body.replaceChildren();
  for (const [method, path, what] of rows) {
    body.append(h("tr", null, h("td", null, h("span", { class: `method method-${method.toLowerCase()}` }, method)), h("td", null, h("code", null, path)), h("td", null, what)));
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
  loadInfo();
  poll();
}

start();
