/**
 * Loss curves as a standalone SVG, drawn by hand: a plot area with x/y axes, "nice" tick
 * values (1, 2 or 5 times a power of ten) with grid lines and labels, one polyline per
 * series and a legend. No dependencies, so the model card's picture is made by our code.
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

/** plot size in pixels (a wide bar chart asks for more width) */
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
export function niceTicks(lo: number, hi: number, target: number): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new RangeError(`niceTicks: bounds must be finite, got ${lo}, ${hi}`);
  if (hi <= lo) [lo, hi] = [lo - 0.5 * (Math.abs(lo) || 1), hi + 0.5 * (Math.abs(hi) || 1)];
  const raw = (hi - lo) / Math.max(1, target);
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
export function lossCurveSvg(train: readonly (readonly [number, number])[], val: readonly (readonly [number, number])[], title: string): string {
  const window = Math.max(1, Math.round(train.length / 50));
  return lineChartSvg(
    [
      { name: 'train loss (per step)', points: train, color: '#1f77b4', width: 1, opacity: 0.25 },
      { name: `train loss (mean of ${window})`, points: movingAverage(train, window), color: '#1f77b4', width: 2 },
      { name: 'validation loss', points: val, color: '#d62728', width: 2, markers: true },
    ],
    { title, xLabel: 'optimizer step', yLabel: 'cross-entropy loss (nats/token)' },
  );
}

export interface BarGroup {
  label: string; // e.g. a drafter
  values: readonly number[]; // one per series
}

/**
 * Grouped bars: one group per label, one bar per series (with its value printed above),
 * a y axis from 0 with nice ticks, and an optional dashed reference line (e.g. 1.0 = no speedup).
 */
export function barChartSvg(
  groups: readonly BarGroup[],
  series: readonly { name: string; color: string }[],
  opts: PlotOptions & { reference?: number },
): string {
  const W = opts.width ?? DEFAULT_WIDTH, H = HEIGHT;
  const plotW = W - MARGIN.left - MARGIN.right, plotH = H - MARGIN.top - MARGIN.bottom;
  const all = groups.flatMap((g) => g.values).filter(Number.isFinite);
  if (all.length === 0) throw new RangeError('barChartSvg: no values to plot');
  const yTicks = niceTicks(0, Math.max(...all, opts.reference ?? 0), 6);
  const y1 = yTicks[yTicks.length - 1]!;
  const py = (y: number): number => MARGIN.top + plotH - (y / (y1 || 1)) * plotH;
  const f = (v: number): string => v.toFixed(1);
  const groupW = plotW / groups.length, barW = (groupW * 0.8) / series.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(opts.title)}</text>`,
  ];
  for (const y of yTicks) {
    out.push(`<line x1="${MARGIN.left}" y1="${f(py(y))}" x2="${MARGIN.left + plotW}" y2="${f(py(y))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${f(py(y) + 4)}" text-anchor="end">${tickLabel(y, yTicks)}</text>`);
  }
  groups.forEach((g, gi) => {
    const gx = MARGIN.left + gi * groupW + groupW * 0.1;
    g.values.forEach((v, si) => {
      if (!Number.isFinite(v)) return;
      const x = gx + si * barW;
      out.push(`<rect x="${f(x)}" y="${f(py(v))}" width="${f(barW * 0.9)}" height="${f(py(0) - py(v))}" fill="${series[si]!.color}"/>`);
      out.push(`<text x="${f(x + barW * 0.45)}" y="${f(py(v) - 4)}" text-anchor="middle" font-size="10">${v.toFixed(2)}</text>`);
    });
    out.push(`<text x="${f(gx + groupW * 0.4)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${escapeXml(g.label)}</text>`);
  });
  if (opts.reference !== undefined) {
    const y = f(py(opts.reference));
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="black" stroke-dasharray="5,4"/>`);
  }
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="black"/>`);
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="black"/>`);
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  out.push(`<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">${escapeXml(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const x = MARGIN.left + 10 + i * 150, y = MARGIN.top + 4;
    out.push(`<rect x="${x}" y="${y}" width="14" height="10" fill="${s.color}"/>`);
    out.push(`<text x="${x + 20}" y="${y + 9}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
