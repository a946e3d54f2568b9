// DOM helpers: every piece of text reaches the page as a text node, never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" || key.startsWith("on")) throw new Error(`refusing attribute ${key}`);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** h("p", {class: "x"}, "text", otherNode): an element with attributes and text/element children. */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** s("line", {x1: 0}): an SVG element. */
export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** An icon from the sprite in index.html. */
export function icon(name, extraClass = "") {
  return s("svg", { class: `icon ${extraClass}`.trim(), "aria-hidden": "true", focusable: "false" },
    s("use", { href: `#i-${name}` }));
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} missing from index.html`);
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** Show a message in an element that is hidden when empty. */
export function say(node, message) {
  node.textContent = message ? String(message) : "";
  node.hidden = !message;
}
