// Small DOM and formatting helpers shared by the console's views. Text goes in through
// textContent only: prompts, utterances and answers are never parsed as HTML.

/** Make an element: el("td", {class: "num", dataset: {value: 3}}, "3"). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`missing element ${selector}`);
  return node;
}

export function replaceChildren(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

const DASH = "–";

export function fmtInt(value) {
  return value === null || value === undefined ? DASH : Number(value).toLocaleString("en-US");
}

export function fmtNumber(value, digits = 3) {
  return value === null || value === undefined ? DASH : Number(value).toFixed(digits);
}

export function fmtPercent(ratio) {
  return ratio === null || ratio === undefined ? DASH : `${(ratio * 100).toFixed(1)} %`;
}

export function fmtMs(value) {
  if (value === null || value === undefined) return DASH;
  return value >= 100 ? Math.round(value).toLocaleString("en-US") : Number(value).toFixed(1);
}

/** Dollars with enough decimals to show the first three significant digits of tiny costs. */
export function fmtUsd(value) {
  if (value === null || value === undefined) return DASH;
  const size = Math.abs(value);
  if (size === 0) return "0";
  const decimals = Math.min(8, Math.max(2, Math.ceil(-Math.log10(size)) + 2));
  return Number(value).toFixed(decimals);
}

/** The raw value for data-value attributes (tests compare it with the API's numbers). */
export function raw(value) {
  return value === null || value === undefined ? "" : String(value);
}

// Ten hues far apart from each other (after the usual categorical set), each dark enough
// for 3:1 against white, as marks and lines need.
const PALETTE = [
  "#1f6fb4", "#d35400", "#1e8a4c", "#c0262a", "#7352b3",
  "#8c564b", "#c2185b", "#5f6368", "#7a7a00", "#0b7f95",
];

/** A stable colour per route, by its position in the route list. */
export function colour(position) {
  if (position < PALETTE.length) return PALETTE[position];
  const hue = Math.round((position * 137.508) % 360);
  return `hsl(${hue} 65% 38%)`;
}

/** A horizontal bar list; items: [{name, value, label, chosen}], scaled to `max`. */
export function bars(list, items, max = undefined) {
  const top = max ?? Math.max(0, ...items.map((item) => item.value));
  if (!items.length) {
    replaceChildren(list, el("li", { class: "empty" }, "nothing yet"));
    return;
  }
  replaceChildren(list, items.map((item) => {
    const share = top > 0 ? Math.max(0, Math.min(1, item.value / top)) : 0;
    return el("li", { class: item.chosen ? "chosen" : "", dataset: { name: item.name } },
      el("span", { class: "name" }, item.name),
      el("span", { class: "track", "aria-hidden": "true" },
        el("span", { class: "fill", style: `width: ${(share * 100).toFixed(1)}%` })),
      el("span", { class: "value", dataset: { value: raw(item.value) } }, item.label));
  }));
}

/** A <dl> of facts; facts: [[term, text, {wide, id, value}]] (value: the raw number). */
export function facts(list, entries) {
  replaceChildren(list, entries.map(([term, text, options = {}]) => {
    const dataset = { fact: options.id || term };
    if ("value" in options) dataset.value = raw(options.value);
    return el("div", { class: options.wide ? "wide" : "", dataset },
      el("dt", {}, term), el("dd", {}, text));
  }));
}

/** Announce something to screen readers and sighted users alike. */
export function announce(message) {
  $("#status").textContent = message;
}
