/**
 * Charts as standalone SVG, drawn by hand: loss curves (a plot area with x/y axes, "nice" tick
 * values, 1, 2 or 5 times a power of ten, with grid lines and labels, one polyline per series
 * and a legend) and the bench's grouped bar chart. No dependencies, so the model card's and
 * the bench's pictures are made by our code.
 */

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[]; // [x, y], x increasing
  color: string;
  width?: number; // stroke width (default 1.5)
  opacity?: number; // default 1
  markers?: boolean; // a dot on each point (for sparse series such as validation loss)
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number; // pixels, default DEFAULT_WIDTH
}

/** canvas size in pixels (a bar chart may grow wider, and is as tall as its rows) */
const DEFAULT_WIDTH = 720, HEIGHT = 420;

const MARGIN = { left: 64, right: 20, top: 40, bottom: 52 };

export function lineChartSvg(series: readonly Series[], opts: PlotOptions): string {
  const W = opts.width ?? DEFAULT_WIDTH, H = HEIGHT;
  const plotW = W - MARGIN.left - MARGIN.right, plotH = H - MARGIN.top - MARGIN.bottom;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new RangeError('lineChartSvg: no points to plot');
  const xTicks = niceTicks(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), 6);
  const yTicks = niceTicks(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])), 6);
  const [x0, x1] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const [y0, y1] = [yTicks[0]!, yTicks[yTicks.length - 1]!];
  // data -> pixels (y grows downwards in SVG)
  const px = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;
  const f = (v: number): string => v.toFixed(1);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(opts.title)}</text>`,
  ];
  for (const x of xTicks) {
    out.push(`<line x1="${f(px(x))}" y1="${MARGIN.top}" x2="${f(px(x))}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${f(px(x))}" y1="${MARGIN.top + plotH}" x2="${f(px(x))}" y2="${MARGIN.top + plotH + 5}" stroke="black"/>`);
    out.push(`<text x="${f(px(x))}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${tickLabel(x, xTicks)}</text>`);
  }
  for (const y of yTicks) {
    out.push(`<line x1="${MARGIN.left}" y1="${f(py(y))}" x2="${MARGIN.left + plotW}" y2="${f(py(y))}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${MARGIN.left - 5}" y1="${f(py(y))}" x2="${MARGIN.left}" y2="${f(py(y))}" stroke="black"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${f(py(y) + 4)}" text-anchor="end">${tickLabel(y, yTicks)}</text>`);
  }
  // axes
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="black"/>`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="black"/>`);
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  out.push(
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">${escapeXml(opts.yLabel)}</text>`,
  );
  for (const s of series) {
    if (s.points.length === 0) continue;
    const pts = s.points.map(([x, y]) => `${f(px(x))},${f(py(y))}`).join(' ');
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}" points="${pts}"/>`,
    );
    if (s.markers) for (const [x, y] of s.points) out.push(`<circle cx="${f(px(x))}" cy="${f(py(y))}" r="2.5" fill="${s.color}"/>`);
  }
  // legend, top right inside the plot
  const shown = series.filter((s) => s.points.length > 0);
  shown.forEach((s, i) => {
    const y = MARGIN.top + 14 + i * 18, x = MARGIN.left + plotW - 170;
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${s.color}" stroke-width="2.5" stroke-opacity="${s.opacity ?? 1}"/>`);
    out.push(`<text x="${x + 30}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Tick values covering [lo, hi]: a step of 1, 2 or 5 times a power of ten giving about
 * `target` intervals, from floor(lo/step)*step to ceil(hi/step)*step.
 */
/** the smallest positive normal double: steps below it lose precision, and their logarithms go wrong */
const MIN_NORMAL = 2 ** -1022;
/** tick steps below this are labelled in exponent form (fixed decimals would be long, or past toFixed's range) */
const SMALLEST_FIXED_STEP = 1e-6;

export function niceTicks(lo: number, hi: number, target: number): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new RangeError(`niceTicks: bounds must be finite, got ${lo}, ${hi}`);
  if (hi <= lo) [lo, hi] = [lo - 0.5 * (Math.abs(lo) || 1), hi + 0.5 * (Math.abs(hi) || 1)];
  // a span so small that a step would underflow gets the smallest normal step instead
  const raw = Math.max((hi - lo) / Math.max(1, target), MIN_NORMAL);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const first = Math.floor(lo / step), last = Math.ceil(hi / step);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  // rounding (denormals, toPrecision) may pull an end tick inside the range: extend by a step
  if (ticks[0]! > lo) ticks.unshift(Number(((first - 1) * step).toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number(((last + 1) * step).toPrecision(12)));
  return ticks;
}

function tickLabel(v: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : 1;
  if (Math.abs(v) >= 10000 && Number.isInteger(v)) return v % 1000 === 0 ? `${v / 1000}k` : String(v);
  if (step < SMALLEST_FIXED_STEP) return v === 0 ? '0' : v.toExponential(1);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(decimals);
}

/** Mean of each point with up to `window - 1` points before it: a trailing moving average. */
export function movingAverage(points: readonly (readonly [number, number])[], window: number): [number, number][] {
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i]![1];
    if (i >= window) sum -= points[i - window]![1];
    out.push([points[i]![0], sum / Math.min(i + 1, window)]);
  }
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The model card's picture: training loss (raw and smoothed) and validation loss vs step. */
export function lossCurveSvg(
  train: readonly (readonly [number, number])[],
  val: readonly (readonly [number, number])[],
  title: string,
  yLabel = 'cross-entropy loss (nats/token)',
): string {
  const window = Math.max(1, Math.round(train.length / 50));
  return lineChartSvg(
    [
      { name: 'train loss (per step)', points: train, color: '#1f77b4', width: 1, opacity: 0.25 },
      { name: `train loss (mean of ${window})`, points: movingAverage(train, window), color: '#1f77b4', width: 2 },
      { name: 'validation loss', points: val, color: '#d62728', width: 2, markers: true },
    ],
    { title, xLabel: 'optimizer step', yLabel },
  );
}

export interface BarGroup {
  label: string; // e.g. a drafter
  values: readonly number[]; // one per series, >= 0 (a value that is not finite draws no bar)
}

export interface BarChartOptions {
  title: string;
  /** what a group is: the header over the group labels (e.g. "drafter") */
  groupLabel: string;
  /** what the bars measure: the label of the value axis along the bottom */
  valueLabel: string;
  /** the least width in pixels; the chart grows wider when its labels need it */
  width?: number;
  /** a dashed line across the groups at this value, named in the legend (e.g. 1 = no speedup) */
  reference?: { value: number; name: string };
}

/** Bar chart layout, in pixels: one row per group, one bar per series in it. */
const BAR = { height: 14, gap: 2, groupGap: 12 };
const BAR_FONT = 12, VALUE_FONT = 10, TITLE_FONT = 15;
/**
 * Width of a glyph as a share of the font size: an upper bound on the average glyph of the
 * labels printed here (Latin letters, digits, punctuation) in a proportional sans-serif, so
 * estimated text boxes are never narrower than the rendered text.
 */
const GLYPH_EM = 0.6;
/** the value axis is never squeezed below this, however long the group labels */
const MIN_PLOT_WIDTH = 320;
const PAD = 10; // canvas edge to text, and label to plot
const LEGEND = { swatch: 14, gap: 6, between: 22, rowHeight: 18 };

/** An upper bound on the width of `text` drawn at `fontSize` (see GLYPH_EM). */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * GLYPH_EM;
}

/**
 * Grouped horizontal bars: one row per group, its label on the left, one bar per series with
 * its value printed after the bar's end, a value axis from 0 along the bottom with nice
 * ticks, and an optional dashed reference line. The labels are never rotated, never share a
 * line and never leave the canvas: the label column is as wide as the longest label, the
 * chart as tall as its rows, and wider than `width` when the labels need it.
 */
export function barChartSvg(groups: readonly BarGroup[], series: readonly { name: string; color: string }[], opts: BarChartOptions): string {
  const all = groups.flatMap((g) => g.values).filter(Number.isFinite);
  if (all.length === 0) throw new RangeError('barChartSvg: no values to plot');
  const negative = all.find((v) => v < 0);
  if (negative !== undefined) throw new RangeError(`barChartSvg: bars start at 0, so values must be >= 0, got ${negative}`);
  for (const g of groups) {
    if (g.values.length !== series.length) throw new RangeError(`barChartSvg: group "${g.label}" has ${g.values.length} values for ${series.length} series`);
  }
  const ticks = niceTicks(0, Math.max(...all, opts.reference?.value ?? 0), 6);
  const top = ticks[ticks.length - 1]!;
  const valueText = (v: number): string => v.toFixed(2);
  const legendItems: { name: string; swatch: (x: number, y: number) => string }[] = [
    ...series.map((s) => ({ name: s.name, swatch: (x: number, y: number) => `<rect x="${x}" y="${y - 10}" width="${LEGEND.swatch}" height="10" fill="${s.color}"/>` })),
    ...(opts.reference
      ? [{ name: opts.reference.name, swatch: (x: number, y: number) => `<line x1="${x}" y1="${y - 5}" x2="${x + LEGEND.swatch}" y2="${y - 5}" stroke="black" stroke-dasharray="4,3"/>` }]
      : []),
  ];
  const legendW = (name: string): number => LEGEND.swatch + LEGEND.gap + textWidth(name, BAR_FONT);

  // columns, left to right: group labels | plot | room for the value printed after the longest bar
  const labelW = Math.max(textWidth(opts.groupLabel, BAR_FONT), ...groups.map((g) => textWidth(g.label, BAR_FONT)));
  const plotLeft = PAD + labelW + PAD;
  const rightRoom = Math.max(textWidth(valueText(top), VALUE_FONT) + 4, textWidth(tickLabel(top, ticks), BAR_FONT) / 2) + PAD;
  const W = Math.ceil(
    Math.max(
      opts.width ?? DEFAULT_WIDTH,
      plotLeft + MIN_PLOT_WIDTH + rightRoom,
      textWidth(opts.title, TITLE_FONT) + 2 * PAD,
      PAD + Math.max(...legendItems.map((i) => legendW(i.name))) + PAD,
    ),
  );
  const plotW = W - plotLeft - rightRoom;

  // rows, top to bottom: title | legend, wrapped to the width | header | one row per group | value axis
  const legend: string[] = [];
  let lx = PAD, ly = 48;
  for (const item of legendItems) {
    if (lx > PAD && lx + legendW(item.name) > W - PAD) [lx, ly] = [PAD, ly + LEGEND.rowHeight];
    legend.push(item.swatch(lx, ly), `<text x="${lx + LEGEND.swatch + LEGEND.gap}" y="${ly}">${escapeXml(item.name)}</text>`);
    lx += legendW(item.name) + LEGEND.between;
  }
  const headerY = ly + LEGEND.rowHeight + 6;
  const plotTop = headerY + 10;
  const groupH = series.length * (BAR.height + BAR.gap) - BAR.gap + BAR.groupGap;
  const plotBottom = plotTop + groups.length * groupH;
  const H = plotBottom + 48;
  const px = (v: number): number => plotLeft + (v / (top || 1)) * plotW;
  const rowTop = (gi: number): number => plotTop + gi * groupH + BAR.groupGap / 2;
  const barTop = (gi: number, si: number): number => rowTop(gi) + si * (BAR.height + BAR.gap);
  const f = (v: number): string => v.toFixed(1);
  const bars = (draw: (v: number, gi: number, si: number) => string): string[] =>
    groups.flatMap((g, gi) => g.values.flatMap((v, si) => (Number.isFinite(v) ? [draw(v, gi, si)] : [])));

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="${BAR_FONT}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="${TITLE_FONT}">${escapeXml(opts.title)}</text>`,
    ...legend,
    `<text x="${f(plotLeft - PAD)}" y="${headerY}" text-anchor="end" font-weight="bold">${escapeXml(opts.groupLabel)}</text>`,
  ];
  for (const t of ticks) {
    out.push(`<line x1="${f(px(t))}" y1="${plotTop}" x2="${f(px(t))}" y2="${plotBottom}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${f(px(t))}" y1="${plotBottom}" x2="${f(px(t))}" y2="${plotBottom + 5}" stroke="black"/>`);
    out.push(`<text x="${f(px(t))}" y="${plotBottom + 18}" text-anchor="middle">${tickLabel(t, ticks)}</text>`);
  }
  const barsH = groupH - BAR.groupGap;
  groups.forEach((g, gi) => out.push(`<text x="${f(plotLeft - PAD)}" y="${f(rowTop(gi) + barsH / 2 + 4)}" text-anchor="end">${escapeXml(g.label)}</text>`));
  out.push(...bars((v, gi, si) => `<rect x="${f(px(0))}" y="${f(barTop(gi, si))}" width="${f(px(v) - px(0))}" height="${BAR.height}" fill="${series[si]!.color}"/>`));
  if (opts.reference) {
    const rx = f(px(opts.reference.value));
    out.push(`<line x1="${rx}" y1="${plotTop}" x2="${rx}" y2="${plotBottom}" stroke="black" stroke-dasharray="4,3"/>`);
  }
  // the values last, on a white halo: readable where they cross the reference line or a grid line
  out.push(
    ...bars(
      (v, gi, si) =>
        `<text x="${f(px(v) + 4)}" y="${f(barTop(gi, si) + BAR.height - 3)}" font-size="${VALUE_FONT}" stroke="white" stroke-width="3" paint-order="stroke">${valueText(v)}</text>`,
    ),
  );
  out.push(`<line x1="${f(plotLeft)}" y1="${plotBottom}" x2="${f(plotLeft + plotW)}" y2="${plotBottom}" stroke="black"/>`);
  out.push(`<line x1="${f(plotLeft)}" y1="${plotTop}" x2="${f(plotLeft)}" y2="${plotBottom}" stroke="black"/>`);
  out.push(`<text x="${f(plotLeft + plotW / 2)}" y="${H - 12}" text-anchor="middle">${escapeXml(opts.valueLabel)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
