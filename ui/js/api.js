// The predictor's HTTP contract (docs/interfaces.md), reached through this page's own origin.

/** The served model's name, learned from the server (KServe's `GET /v1/models`): the chart's `modelName` or
 * CHURN_MODEL_NAME needs no change here. */
let model = null;

export function modelName() {
  return model;
}

export function routes() {
  const m = encodeURIComponent(model ?? "<model>");
  return {
    models: "/v1/models",
    info: `/v1/models/${m}/info`,
    monitoring: `/v1/models/${m}/monitoring`,
    quality: `/v1/models/${m}/quality`,
    feedback: `/v1/models/${m}/feedback`,
    predict: `/v1/models/${m}:predict`,
    explain: `/v1/models/${m}:explain`,
    model: `/v1/models/${m}`,
    ready: "/v2/health/ready",
    live: "/v2/health/live",
    v2Metadata: `/v2/models/${m}`,
    v2Infer: `/v2/models/${m}/infer`,
  };
}

/** Ask the server which model it serves (once; a ChurnGuard predictor serves exactly one). */
async function served() {
  if (model) return model;
  const data = await call(routes().models);
  const names = Array.isArray(data.models) ? data.models.filter((n) => typeof n === "string" && n) : [];
  if (names.length !== 1) throw new ApiError(`The predictor lists ${names.length} models; this page needs one.`, 200);
  model = names[0];
  return model;
}

/** A failed call: `status` 0 means the server was not reached; `details` name the offending fields. */
export class ApiError extends Error {
  constructor(message, status, details = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.details = details;
  }

  /** The predictor was not reached or is not serving (nginx's 502/504, KServe's 503): worth retrying later. */
  get unreachable() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** A short human text for any JSON value, so an object never shows as "[object Object]". */
export function describe(value) {
  if (value === null || value === undefined) return "empty";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return "unreadable value";
  }
}

function errorMessage(status, body) {
  if (body && typeof body.error === "string" && body.error) return body.error;
  if (body && typeof body.detail === "string" && body.detail) return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => (d && typeof d.msg === "string" ? d.msg : describe(d))).join("; ");
  }
  if (status === 502 || status === 504) return "The predictor is unreachable.";
  if (status === 503) return "The model is still loading. Try again in a moment.";
  return `The server answered with status ${status}.`;
}

function errorDetails(body) {
  if (!body || !Array.isArray(body.details)) return [];
  return body.details
    .filter((d) => d && typeof d === "object")
    .map((d) => ({
      field: typeof d.field === "string" ? d.field : null,
      value: d.value,
      rule: d.rule === undefined ? "" : describe(d.rule),
      row: Number.isInteger(d.row) ? d.row : null,
    }));
}

async function call(path, { method = "GET", body, timeoutMs = 20000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      cache: "no-store",
      headers: body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (err) {
    const late = err && err.name === "AbortError";
    throw new ApiError(late ? "The predictor did not answer in time." : "Cannot reach the server.", 0);
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(errorMessage(response.status, data), response.status, errorDetails(data));
  if (data === null || typeof data !== "object") {
    throw new ApiError("The predictor sent an answer that is not JSON.", response.status);
  }
  return data;
}

export async function getInfo() {
  await served();
  return call(routes().info);
}

/** The served model's drift window (PSI and distributions per feature); 404 on predictors without the route. */
export async function getMonitoring() {
  await served();
  return call(routes().monitoring);
}

/** Live quality of the served version (test, estimated, realized) and the challenger; 404 on older predictors. */
export async function getQuality() {
  await served();
  return call(routes().quality);
}

/** V1 predict; every prediction must carry a numeric probability (none is ever made up here). */
export async function predict(instances) {
  await served();
  const data = await call(routes().predict, { method: "POST", body: { instances } });
  const predictions = Array.isArray(data.predictions) ? data.predictions : null;
  if (!predictions || predictions.length !== instances.length) {
    throw new ApiError("The predictor returned a different number of predictions than rows sent.", 200);
  }
  return predictions.map((p, i) => {
    const probability = p && typeof p.churn_probability === "number" ? p.churn_probability : NaN;
    if (!Number.isFinite(probability)) throw new ApiError(`The predictor returned no probability for row ${i + 1}.`, 200);
    const outside = Array.isArray(p.outside_training_range) ? p.outside_training_range.filter((n) => typeof n === "string") : [];
    return { probability, churn: p.churn === 1 || p.churn === true ? 1 : 0, risk: String(p.risk ?? ""), outside };
  });
}

export async function explain(instance) {
  await served();
  const data = await call(routes().explain, { method: "POST", body: { instances: [instance] } });
  const first = Array.isArray(data.explanations) ? data.explanations[0] : null;
  if (!first || typeof first.contributions !== "object" || first.contributions === null) {
    throw new ApiError("The predictor returned no explanation.", 200);
  }
  return first;
}

/** "ready" | "loading" | "offline" from the readiness route (503 while the model loads). */
export async function readiness() {
  try {
    const response = await fetch(routes().ready, { cache: "no-store", headers: { Accept: "application/json" } });
    if (response.ok) return "ready";
    if (response.status === 503) return "loading";
    return "offline";
  } catch {
    return "offline";
  }
}
