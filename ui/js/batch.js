// Batch view: validate a CSV against the spec in the browser, score valid rows through V1 in chunks.

import { modelName, predict } from "./api.js";
import { byId, clear, h, say } from "./dom.js";
import { download, parseCsv, toCsv } from "./csv.js";
import { featureLabel, formatPercent, formatValue, parseRecord, tierLabel, TIERS } from "./spec.js";

const CHUNK_ROWS = 200;
const MAX_BYTES = 10 * 1024 * 1024;
const TOP_ROWS = 10;
const OUTPUT_COLUMNS = ["churn_probability", "churn", "risk", "error"];

let info = null;
let running = false;
let scored = null; // {header, rows: [{line, cells, instance, result, error}]}

function progress(done, total, text) {
  const bar = byId("batch-progress");
  bar.max = Math.max(total, 1);
  bar.value = done;
  byId("batch-progress-text").textContent = text;
}

function fail(message) {
  say(byId("batch-error"), message);
  progress(0, 1, "Stopped.");
}

function resetOutputs() {
  say(byId("batch-error"), "");
  byId("batch-summary").hidden = true;
  byId("batch-top").hidden = true;
  byId("batch-invalid").hidden = true;
  byId("batch-download").disabled = true;
  scored = null;
}

/** Rows of the file as records keyed by header, each validated against the spec. */
function prepare(text) {
  const table = parseCsv(text);
  if (table.length === 0) throw new Error("The file is empty.");
  const header = table[0].map((c) => c.trim());
  const names = info.spec.features.map((f) => f.name);
  const missing = names.filter((n) => !header.includes(n));
  if (missing.length) throw new Error(`Missing column${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}.`);
  // A file may keep its own columns of these names (e.g. the label `churn` of a training CSV): they stay as they
  // are, and the model's output goes next to them as predicted_<name>.
  const outputs = OUTPUT_COLUMNS.map((c) => {
    let name = c;
    while (header.includes(name)) name = `predicted_${name}`;
    return name;
  });
  if (table.length === 1) throw new Error("The file has a header but no rows.");
  const rows = table.slice(1).map((cells, i) => {
    const line = i + 2; // line 1 is the header
    if (cells.length !== header.length) {
      return { line, cells, error: `has ${cells.length} cells, the header has ${header.length}` };
    }
    const record = Object.fromEntries(header.map((name, j) => [name, cells[j]]));
    const { instance, errors } = parseRecord(info.spec.features, record, info.input_schema);
    const reasons = Object.entries(errors).map(([name, msg]) => `${name}: ${msg}`);
    return reasons.length ? { line, cells, error: reasons.join("; ") } : { line, cells, instance };
  });
  return { header, rows, outputs };
}

/** Score one chunk; rows the server rejects (details[].row) are marked and the rest retried once. */
async function scoreChunk(chunk, retry = true) {
  try {
    const results = await predict(chunk.map((r) => r.instance));
    chunk.forEach((r, i) => {
      r.result = results[i];
    });
  } catch (err) {
    if (err.status === 413 && chunk.length > 1) {
      // The predictor takes fewer rows per request (CHURN_MAX_ROWS): halve the chunk and go on.
      const mid = Math.ceil(chunk.length / 2);
      await scoreChunk(chunk.slice(0, mid), retry);
      await scoreChunk(chunk.slice(mid), retry);
      return;
    }
    const rejected = new Map();
    for (const d of err.details || []) {
      if (d.row !== null && d.row >= 0 && d.row < chunk.length) {
        const why = `${d.field ?? "row"}: rejected by the model server (${d.rule || "invalid"})`;
        rejected.set(d.row, rejected.has(d.row) ? `${rejected.get(d.row)}; ${why}` : why);
      }
    }
    if (!retry || err.status < 400 || err.status >= 500 || rejected.size === 0) throw err;
    const rest = [];
    chunk.forEach((r, i) => {
      if (rejected.has(i)) r.error = rejected.get(i);
      else rest.push(r);
    });
    if (rest.length) await scoreChunk(rest, false);
  }
}

function summary(rows) {
  const done = rows.filter((r) => r.result);
  const churners = done.filter((r) => r.result.churn === 1).length;
  const invalid = rows.filter((r) => r.error).length;
  const tiles = [
    ["Rows", rows.length],
    ["Scored", done.length],
    ["Will churn", churners, done.length ? formatPercent(churners / done.length) : ""],
    ["Not scored", invalid],
  ];
  const dl = clear(byId("batch-summary"));
  for (const [k, v, sub] of tiles) {
    dl.append(h("div", { class: "tile" }, h("dt", null, k), h("dd", { "data-tile": k }, String(v), sub ? h("span", { class: "fact-sub" }, sub) : null)));
  }
  dl.hidden = false;
}

function topTable(rows) {
  const features = info.spec.features;
  const best = rows
    .filter((r) => r.result)
    .sort((a, b) => b.result.probability - a.result.probability)
    .slice(0, TOP_ROWS);
  const table = clear(byId("batch-top-table"));
  table.append(
    h("caption", { class: "visually-hidden" }, `The ${best.length} rows with the highest churn probability`),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "Line"),
        features.map((f) => h("th", { scope: "col" }, featureLabel(f))),
        h("th", { scope: "col", class: "num" }, "Probability"),
        h("th", { scope: "col" }, "Risk"),
      ),
    ),
  );
  const body = h("tbody");
  for (const r of best) {
    const risk = TIERS[r.result.risk] ? r.result.risk : "none";
    body.append(
      h(
        "tr",
        null,
        h("td", { class: "num" }, String(r.line)),
        features.map((f) => h("td", null, formatValue(f, r.instance[f.name]))),
        h("td", { class: "num strong", "data-probability": String(r.result.probability) }, formatPercent(r.result.probability)),
        h("td", null, h("span", { class: "badge badge-sm", "data-risk": risk }, tierLabel(r.result.risk))),
      ),
    );
  }
  table.append(body);
  byId("batch-top").hidden = best.length === 0;
}

function invalidList(rows) {
  const bad = rows.filter((r) => r.error);
  const list = clear(byId("batch-invalid-list"));
  for (const r of bad) {
    list.append(h("li", { "data-line": r.line }, h("span", { class: "line-no" }, `Line ${r.line}`), h("span", null, r.error)));
  }
  byId("batch-invalid").hidden = bad.length === 0;
}

function outputCsv() {
  const { header, rows, outputs } = scored;
  const out = [[...header, ...outputs]];
  for (const r of rows) {
    const cells = [...r.cells];
    while (cells.length < header.length) cells.push("");
    const res = r.result;
    out.push([
      ...cells.slice(0, header.length),
      res ? String(res.probability) : "",
      res ? String(res.churn) : "",
      res ? res.risk : "",
      r.error || "",
    ]);
  }
  return toCsv(out);
}

async function run(file) {
  if (running || !info) return;
  resetOutputs();
  byId("batch-file-name").textContent = `${file.name} · ${(file.size / 1024).toFixed(1)} KB`;
  if (file.size > MAX_BYTES) return fail("The file is larger than 10 MB; split it into smaller files.");
  let prepared;
  try {
    prepared = prepare(await file.text());
  } catch (err) {
    return fail(err.message);
  }
  const renamed = OUTPUT_COLUMNS.filter((c, i) => prepared.outputs[i] !== c);
  if (renamed.length) {
    const which = renamed.map((c) => `${c} → ${prepared.outputs[OUTPUT_COLUMNS.indexOf(c)]}`).join(", ");
    byId("batch-file-name").textContent += ` · the file's own ${renamed.join(", ")} kept; the model's output as ${which}`;
  }
  running = true;
  byId("batch-file").disabled = true;
  const valid = prepared.rows.filter((r) => r.instance);
  let done = 0;
  progress(0, valid.length, `Scoring ${valid.length} valid row(s)…`);
  try {
    for (let i = 0; i < valid.length; i += CHUNK_ROWS) {
      const chunk = valid.slice(i, i + CHUNK_ROWS);
      await scoreChunk(chunk);
      done += chunk.length;
      progress(done, valid.length, `Scored ${done} of ${valid.length} valid row(s).`);
    }
    if (!valid.length) progress(1, 1, "No valid rows to score.");
  } catch (err) {
    for (const r of valid.slice(done)) if (!r.result && !r.error) r.error = `not scored: ${err.message}`;
    say(byId("batch-error"), `Scoring stopped after ${done} row(s): ${err.message}`);
  } finally {
    running = false;
    byId("batch-file").disabled = false;
  }
  scored = prepared;
  summary(prepared.rows);
  topTable(prepared.rows);
  invalidList(prepared.rows);
  byId("batch-download").disabled = false;
}

function template() {
  const names = info.spec.features.map((f) => f.name);
  const rows = [names];
  for (const p of Array.isArray(info.presets) ? info.presets : []) {
    rows.push(names.map((n) => (p.features && p.features[n] !== undefined && p.features[n] !== null ? String(p.features[n]) : "")));
  }
  return toCsv(rows);
}

let wired = false;

export function renderBatch(modelInfo) {
  info = modelInfo;
  byId("batch-columns").textContent = info.spec.features.map((f) => f.name).join(", ");
  byId("batch-template").disabled = false;
  if (wired) return;
  wired = true;
  const input = byId("batch-file");
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) run(input.files[0]);
  });
  const zone = byId("dropzone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) run(file);
  });
  byId("batch-download").addEventListener("click", () => {
    if (scored) download(`${modelName()}-scored.csv`, outputCsv());
  });
  byId("batch-template").addEventListener("click", () => download(`${modelName()}-template.csv`, template()));
}
