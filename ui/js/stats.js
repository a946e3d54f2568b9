// Classification metrics computed in the browser (a scored file that carries its own labels).

/** Counts of the 2×2 table for labels y (0/1) and verdicts v (0/1). */
export function confusion(y, v) {
  const m = { tn: 0, fp: 0, fn: 0, tp: 0 };
  for (let i = 0; i < y.length; i += 1) {
    if (y[i] === 1) m[v[i] === 1 ? "tp" : "fn"] += 1;
    else m[v[i] === 1 ? "fp" : "tn"] += 1;
  }
  return m;
}

/** F1 of the positive class; null when it is undefined (no positives predicted and none actual). */
export function f1({ fp, fn, tp }) {
  const d = 2 * tp + fp + fn;
  return d ? (2 * tp) / d : null;
}

/**
 * ROC AUC as the Mann-Whitney statistic: the chance that a random churner scores above a random non-churner,
 * ties counting half (what scikit-learn's roc_auc_score computes). Null without both classes.
 */
export function rocAuc(y, scores) {
  const order = scores.map((p, i) => [p, y[i]]).sort((a, b) => a[0] - b[0]);
  let pos = 0;
  let neg = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j < order.length && order[j][0] === order[i][0]) j += 1;
    const rank = (i + 1 + j) / 2; // average rank of the tied run (1-based)
    for (let k = i; k < j; k += 1) {
      if (order[k][1] === 1) {
        pos += 1;
        rankSum += rank;
      } else neg += 1;
    }
    i = j;
  }
  if (!pos || !neg) return null;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}
