// Small helpers the panels draw with: HTML and SVG elements built from data (text always goes
// in through textContent, so a prompt or a token can never inject markup), a colour scale, and
// number formats.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** an HTML element: el('span', { class: 'chip' }, 'text', child, ...) */
export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** an SVG element, the same way: svg('rect', { x: 0, y: 0, width: 10, height: 10 }) */
export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

/** replace a panel body's content */
export function setContent(container, ...children) {
  container.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

/** an SVG text label with a tooltip holding the full text when it is cut */
export function svgText(x, y, text, attrs = {}, maxChars = Infinity) {
  const shown = text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
  return svg('text', { x, y, ...attrs }, shown, shown !== text ? svg('title', {}, text) : null);
}

/**
 * Probability 0..1 to a fill colour: white through blue. The lightness falls with the square
 * root so that small probabilities (a few percent) are still visible next to large ones.
 */
export function heat(p) {
  const lightness = 97 - 60 * Math.sqrt(Math.min(1, Math.max(0, p)));
  return `hsl(214 80% ${lightness.toFixed(1)}%)`;
}

/** text colour that stays readable on heat(p) */
export function heatText(p) {
  return p > 0.35 ? '#fff' : '#123';
}

export const percent = (p) => (p >= 0.995 ? '100%' : p >= 0.001 ? `${(100 * p).toFixed(p >= 0.1 ? 0 : 1)}%` : '<0.1%');
export const fixed = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
