// Batch view: validate a CSV against the spec in the browser, score valid rows through V1 in chunks, and show every
// scored row (sortable, filterable, paged), the distribution of probabilities and, when the file has labels, how
// the model did on it.

import { modelName, predict } from "./api.js";
import { confusionChart, histogram } from "./charts.js";
import { byId, clear, h, say } from "./dom.js";
import { download, parseCsv, toCsv } from "./csv.js";
import { confusion, f1, rocAuc } from "./stats.js";
import { featureLabel, formatPercent, formatValue, parseRecord, tierBounds, tierLabel, TIERS } from "./spec.js";

const CHUNK_ROWS = 200;
const MAX_BYTES = 10 * 1024 * 1024;
const PAGE_ROWS = 25;
const OUTPUT_COLUMNS = ["churn_probability", "churn", "risk", "error"];

let info = null;
let running = false;
let lastFile = null;
let stoppedUnreachable = false;
let scored = null; // {fileName, header, outputs, label, rows: [{line, cells, instance, result, error, label}]}
const view = { key: "probability", dir: -1, filter: "all", page: 0 };

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
  say(byId("batch-recovered"), "");
  byId("batch-retry").hidden = true;
  byId("batch-summary").hidden = true;
  byId("batch-top").hidden = true;
  byId("batch-charts").hidden = true;
  byId("batch-labels").hidden = true;
  byId("batch-invalid").hidden = true;
  byId("batch-download").disabled = true;
  byId("batch-download-note").textContent = "Available once a file is scored.";
  stoppedUnreachable = false;
  scored = null;
}

/** `"600"` or `(empty)`: the value a message is about, as the file has it. */
function quoted(raw) {
  const text = raw === undefined || raw === null ? "" : String(raw);
  if (text.trim() === "") return "(empty)";
  return `"${text.length > 40 ? `${text.slice(0, 40)}…` : text}"`;
}

/** A label cell as 1 (churned), 0 (stayed) or null (no label), by the spec's target values. */
function labelOf(raw) {
  const target = info.spec.target || {};
  const text = String(raw ?? "").trim();
  if (text === "") return null;
  const same = (v) => v !== undefined && v !== null && (String(v) === text || (Number.isFinite(Number(text)) && Number(text) === Number(v)));
  if (same(target.positive)) return 1;
  if (same(target.negative)) return 0;
  return null;
}

/** Rows of the file as records keyed by header, each validated against the spec. */
function prepare(text, fileName) {
  const table = parseCsv(text);
  if (table.length === 0) throw new Error("The file is empty.");
  const header = table[0].map((c) => c.trim());
  const names = info.spec.features.map((f) => f.name);
  const missing = names.filter((n) => !header.includes(n));
  if (missing.length) throw new Error(`Missing column${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}. The header has: ${header.join(", ")}.`);
  // A file may keep its own columns of these names (e.g. the label `churn` of a training CSV): they stay as they
  // are, and the model's output goes next to them as predicted_<name>.
  const outputs = OUTPUT_COLUMNS.map((c) => {
    let name = c;
    while (header.includes(name)) name = `predicted_${name}`;
    return name;
  });
  if (table.length === 1) throw new Error("The file has a header but no rows.");
  const target = info.spec.target && info.spec.target.name;
  const labelAt = target ? header.indexOf(target) : -1;
  const rows = table.slice(1).map((cells, i) => {
    const line = i + 2; // line 1 is the header
    if (cells.length !== header.length) {
      return { line, cells, error: `has ${cells.length} cells, the header has ${header.length}` };
    }
    const record = Object.fromEntries(header.map((name, j) => [name, cells[j]]));
    const { instance, errors } = parseRecord(info.spec.features, record, info.input_schema);
    const reasons = Object.entries(errors).map(([name, msg]) => `${name} ${quoted(record[name])}: ${msg}`);
    const label = labelAt >= 0 ? labelOf(cells[labelAt]) : null;
    return reasons.length ? { line, cells, error: reasons.join("; ") } : { line, cells, instance, label };
  });
  return { fileName, header, rows, outputs, label: labelAt >= 0 ? target : null };
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
        const value = d.field && chunk[d.row].instance ? ` ${quoted(chunk[d.row].instance[d.field])}` : "";
        const why = `${d.field ?? "row"}${value}: rejected by the model server (${d.rule || "invalid"})`;
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

function tone(p) {
  const b = tierBounds(info);
  return p >= b.high ? "tone-high" : p >= b.medium ? "tone-medium" : "tone-low";
}

function charts(rows) {
  const done = rows.filter((r) => r.result);
  const box = clear(byId("batch-hist-chart"));
  const t = Number(info.threshold);
  const probs = done.map((r) => r.result.probability);
  const above = probs.filter((p) => p >= t).length;
  box.append(
    histogram({
      label: `Histogram of ${probs.length} churn probabilities in 5-point bins; ${above} at or above the ${formatPercent(t)} threshold.`,
      values: probs,
      marker: t,
      markerLabel: `threshold ${formatPercent(t)}`,
      tone,
    }),
    h("p", { class: "muted small" }, `Bars coloured by risk tier; the line is the ${formatPercent(t)} churn threshold. ${above} of ${probs.length} at or above it.`),
  );
  byId("batch-charts").hidden = done.length === 0;
  labels(done);
}

/** The file's own labels against the model's verdicts: the confusion matrix, ROC AUC and F1 on this file. */
function labels(done) {
  const card = byId("batch-labels");
  const body = clear(byId("batch-labels-body"));
  if (!scored.label) {
    card.hidden = true;
    return;
  }
  const known = done.filter((r) => r.label === 0 || r.label === 1);
  card.hidden = false;
  if (!known.length) {
    body.append(h("p", { class: "muted" }, `The column ${scored.label} has no values the spec reads as labels, so there is nothing to compare with.`));
    return;
  }
  const y = known.map((r) => r.label);
  const m = confusion(y, known.map((r) => r.result.churn));
  const auc = rocAuc(y, known.map((r) => r.result.probability));
  const f = f1(m);
  const fmt = (v) => (v === null ? "n/a" : v.toFixed(3));
  const dl = h("dl", { class: "facts facts-compact" });
  const fact = (k, v, key) => h("div", { class: "fact" }, h("dt", null, k), h("dd", { "data-label-metric": key }, v));
  dl.append(
    fact("ROC AUC", fmt(auc), "roc_auc"),
    fact("F1", fmt(f), "f1"),
    fact("Accuracy", fmt((m.tp + m.tn) / known.length), "accuracy"),
    fact("Labelled rows", String(known.length), "rows"),
  );
  const model = info.metrics || {};
  const note = typeof model.roc_auc === "number" ? ` On its held-out test rows the model had ROC AUC ${model.roc_auc.toFixed(3)} and F1 ${typeof model.f1 === "number" ? model.f1.toFixed(3) : "n/a"}.` : "";
  body.append(
    h("p", { class: "muted small" }, `Column ${scored.label} read as the actual outcome for ${known.length} scored row${known.length === 1 ? "" : "s"}; verdicts at the ${formatPercent(Number(info.threshold))} threshold. Computed in your browser.${note}`),
    dl,
    h("div", { class: "chart chart-cm-wrap", "data-confusion": JSON.stringify(m) }, confusionChart(m, `Confusion matrix on this file: ${m.tn} true negatives, ${m.fp} false alarms, ${m.fn} missed churners, ${m.tp} caught churners.`)),
  );
}

/** The table's columns: where the eye goes first (probability, risk) before the inputs. */
function columns() {
  const ids = (info.spec.id_columns || []).filter((c) => scored.header.includes(c));
  const cols = [
    { key: "line", label: "Line", num: true, value: (r) => r.line, cell: (r) => String(r.line) },
    ...ids.map((c) => ({ key: `id:${c}`, label: c, value: (r) => r.cells[scored.header.indexOf(c)], cell: (r) => r.cells[scored.header.indexOf(c)] })),
    {
      key: "probability",
      label: "Probability",
      num: true,
      value: (r) => r.result.probability,
      cell: (r) => formatPercent(r.result.probability),
      attrs: (r) => ({ class: "num strong", "data-probability": String(r.result.probability) }),
    },
    {
      key: "risk",
      label: "Risk",
      value: (r) => r.result.probability,
      cell: (r) => h("span", { class: "badge badge-sm", "data-risk": TIERS[r.result.risk] ? r.result.risk : "none" }, tierLabel(r.result.risk)),
    },
  ];
  if (scored.label) {
    cols.push({
      key: "label",
      label: `Actual (${scored.label})`,
      value: (r) => (r.label === null ? -1 : r.label),
      cell: (r) => (r.label === null ? "—" : r.label === 1 ? (r.result.churn === 1 ? "churned ✓" : "churned ✗") : r.result.churn === 1 ? "stayed ✗" : "stayed ✓"),
    });
  }
  for (const f of info.spec.features) {
    cols.push({ key: `f:${f.name}`, label: featureLabel(f), value: (r) => r.instance[f.name], cell: (r) => formatValue(f, r.instance[f.name]) });
  }
  return cols;
}

const FILTERS = {
  all: ["All scored rows", () => true],
  high: ["High risk", (r) => r.result.risk === "high"],
  medium: ["Medium risk", (r) => r.result.risk === "medium"],
  low: ["Low risk", (r) => r.result.risk === "low"],
  wrong: ["Model and label disagree", (r) => r.label !== null && r.label !== r.result.churn],
};

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true });
}

function table() {
  const cols = columns();
  const done = scored.rows.filter((r) => r.result);
  const filter = FILTERS[view.filter] || FILTERS.all;
  const col = cols.find((c) => c.key === view.key) || cols[1];
  const shown = done.filter(filter[1]).sort((a, b) => view.dir * compare(col.value(a), col.value(b)) || a.line - b.line);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
  view.page = Math.min(view.page, pages - 1);
  const slice = shown.slice(view.page * PAGE_ROWS, (view.page + 1) * PAGE_ROWS);
  const t = clear(byId("batch-top-table"));
  const sortName = `${col.label}, ${view.dir < 0 ? "highest" : "lowest"} first`;
  t.append(h("caption", { class: "visually-hidden" }, `Scored customers (${filter[0]}), sorted by ${sortName}`));
  const headRow = h("tr");
  for (const c of cols) {
    const active = c.key === col.key;
    const button = h("button", { type: "button", class: "sort", "data-sort": c.key }, c.label, h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (view.dir < 0 ? "▼" : "▲") : ""));
    button.addEventListener("click", () => {
      if (view.key === c.key) view.dir = -view.dir;
      else {
        view.key = c.key;
        view.dir = c.key === "probability" || c.key === "risk" ? -1 : 1;
      }
      view.page = 0;
      table();
      byId("batch-top-table").querySelector(`[data-sort="${CSS.escape(c.key)}"]`).focus();
    });
    headRow.append(h("th", { scope: "col", class: c.num ? "num" : undefined, "aria-sort": active ? (view.dir < 0 ? "descending" : "ascending") : undefined }, button));
  }
  t.append(h("thead", null, headRow));
  const body = h("tbody");
  for (const r of slice) {
    const tr = h("tr", { "data-line": r.line });
    for (const c of cols) tr.append(h("td", c.attrs ? c.attrs(r) : { class: c.num ? "num" : undefined }, c.cell(r)));
    body.append(tr);
  }
  if (!slice.length) body.append(h("tr", null, h("td", { colspan: cols.length, class: "muted" }, "No scored row matches this filter.")));
  t.append(body);
  const first = shown.length ? view.page * PAGE_ROWS + 1 : 0;
  const last = Math.min(shown.length, (view.page + 1) * PAGE_ROWS);
  byId("batch-page").textContent = `Rows ${first}–${last} of ${shown.length} · page ${view.page + 1} of ${pages}`;
  byId("batch-prev").disabled = view.page === 0;
  byId("batch-next").disabled = view.page >= pages - 1;
  byId("batch-table-note").textContent = `Every scored row, sorted by ${sortName}: choose a column heading to sort by it. On a narrow screen, scroll the table sideways for the inputs.`;
  byId("batch-top").hidden = done.length === 0;
}

function filters() {
  const select = clear(byId("batch-filter"));
  for (const [key, [label]] of Object.entries(FILTERS)) {
    if (key === "wrong" && !scored.label) continue;
    select.append(h("option", { value: key }, label));
  }
  select.value = FILTERS[view.filter] && (view.filter !== "wrong" || scored.label) ? view.filter : "all";
  view.filter = select.value;
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
      r.error || (res ? "" : "not scored: scoring stopped before this row"),
    ]);
  }
  return toCsv(out);
}

/** `churn.csv` → `churn-scored.csv`; a name without one → `<model>-scored.csv`. */
export function scoredName(fileName) {
  const base = String(fileName || "").replace(/\.csv$/i, "").replace(/[\\/]/g, "_").trim();
  return `${base || modelName() || "customers"}-scored.csv`;
}

async function run(file) {
  if (running || !info) return;
  resetOutputs();
  lastFile = file;
  byId("batch-file-name").textContent = `${file.name} · ${(file.size / 1024).toFixed(1)} KB`;
  if (file.size > MAX_BYTES) return fail("The file is larger than 10 MB; split it into smaller files.");
  let prepared;
  try {
    prepared = prepare(await file.text(), file.name);
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
  let failure = null;
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
    failure = err;
  } finally {
    running = false;
    byId("batch-file").disabled = false;
  }
  scored = prepared;
  const scoredRows = valid.filter((r) => r.result).length;
  if (failure) {
    // One clear error, not a row per unscored line: the rows were fine, the scoring stopped.
    stoppedUnreachable = Boolean(failure.unreachable);
    const left = valid.length - scoredRows;
    const text = scoredRows
      ? `Scoring stopped after ${scoredRows} of ${valid.length} row(s): ${failure.message} The ${left} remaining row(s) were not scored.`
      : `Nothing was scored: ${failure.message}`;
    say(byId("batch-error"), `${text}${stoppedUnreachable ? " Score the file again once the status says Ready." : ""}`);
    progress(scoredRows, valid.length, `Stopped: ${scoredRows} of ${valid.length} valid row(s) scored.`);
    byId("batch-retry").hidden = false;
  }
  summary(prepared.rows);
  filters();
  charts(prepared.rows);
  table();
  invalidList(prepared.rows);
  const any = scoredRows > 0 || prepared.rows.some((r) => r.error);
  byId("batch-download").disabled = !any;
  byId("batch-download-note").textContent = any ? `Saved as ${scoredName(file.name)}.` : "Nothing to download: no row was scored.";
}

/** The predictor is Ready again after a stop for being unreachable: say so, next to the way to go on. */
export function batchReady() {
  if (!stoppedUnreachable || running) return;
  stoppedUnreachable = false;
  say(byId("batch-error"), "");
  say(byId("batch-recovered"), "The predictor is back: score the file again to finish it.");
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
  byId("batch-retry").addEventListener("click", () => {
    if (lastFile) run(lastFile);
  });
  byId("batch-filter").addEventListener("change", () => {
    view.filter = byId("batch-filter").value;
    view.page = 0;
    table();
  });
  byId("batch-prev").addEventListener("click", () => {
    view.page = Math.max(0, view.page - 1);
    table();
  });
  byId("batch-next").addEventListener("click", () => {
    view.page += 1;
    table();
  });
  byId("batch-download").addEventListener("click", () => {
    if (scored) download(scoredName(scored.fileName), outputCsv());
  });
  byId("batch-template").addEventListener("click", () => download(`${modelName()}-template.csv`, template()));
}
