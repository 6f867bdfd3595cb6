// A reader of the Prometheus text format, enough for the service's own /metrics.

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(value) {
  return value.replace(/\\(["\\n])/g, (_, c) => (c === "n" ? "\n" : c));
}

/** Every sample as {name, labels, value}; comments and blank lines are skipped. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels = {};
    if (match[3]) {
      for (const [, name, value] of match[3].matchAll(LABEL)) labels[name] = unescape(value);
    }
    const value = Number(match[4]);
    if (!Number.isNaN(value)) samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/** Sum of the samples called `name`, grouped by one label (or the total for `by` null). */
export function sumBy(samples, name, by = null) {
  const groups = {};
  for (const sample of samples) {
    if (sample.name !== name) continue;
    const key = by === null ? "" : sample.labels[by] ?? "";
    groups[key] = (groups[key] || 0) + sample.value;
  }
  return by === null ? groups[""] || 0 : groups;
}

/**
 * The q-quantile of a histogram summed over all its label sets, interpolated linearly inside
 * the bucket that holds it (what PromQL's histogram_quantile does); null with no samples.
 */
export function histogramQuantile(samples, name, q) {
  const buckets = new Map();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket`) continue;
    const bound = sample.labels.le === "+Inf" ? Infinity : Number(sample.labels.le);
    buckets.set(bound, (buckets.get(bound) || 0) + sample.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  if (!sorted.length) return null;
  const total = sorted[sorted.length - 1][1];
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      const inBucket = count - lowerCount;
      const share = inBucket > 0 ? (rank - lowerCount) / inBucket : 1;
      return lowerBound + (bound - lowerBound) * share;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}
