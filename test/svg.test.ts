// The bench's bar chart: every label readable (inside the canvas, no two overlapping) for any
// labels and values, and every bar as long as its value on the axis.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { barChartSvg, niceTicks, type BarGroup } from '../src/train/svg.js';

/** Width of a glyph as a share of the font size: the widest average the chart's labels reach. */
const GLYPH_EM = 0.6;
const CANVAS_FONT = 12;

interface Box { x0: number; x1: number; y0: number; y1: number; what: string }

/** Each element's attributes (numbers parsed where they are numbers) and text content. */
function elements(svg: string, tag: string): { attrs: Record<string, string>; text: string }[] {
  const re = new RegExp(`<${tag}\\b([^>]*?)(?:/>|>([^<]*)</${tag}>)`, 'g');
  return [...svg.matchAll(re)].map((m) => ({
    attrs: Object.fromEntries([...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])),
    text: m[2] ?? '',
  }));
}

/** The box a text element covers, from its anchor, baseline and an upper bound on its width. */
function textBox(attrs: Record<string, string>, text: string): Box {
  const size = Number(attrs['font-size'] ?? CANVAS_FONT);
  const raw = text.replace(/&lt;|&gt;|&amp;|&quot;/g, '_');
  const w = raw.length * size * GLYPH_EM, x = Number(attrs.x), y = Number(attrs.y);
  const x0 = attrs['text-anchor'] === 'end' ? x - w : attrs['text-anchor'] === 'middle' ? x - w / 2 : x;
  return { x0, x1: x0 + w, y0: y - size, y1: y + size * 0.25, what: raw };
}

const overlaps = (a: Box, b: Box): boolean => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

const label = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_ ()<&'), minLength: 1, maxLength: 60 });

const chart = fc.integer({ min: 1, max: 4 }).chain((nSeries) =>
  fc.record({
    series: fc.array(fc.record({ name: label, color: fc.constant('#4477aa') }), { minLength: nSeries, maxLength: nSeries }),
    groups: fc.array(
      fc.record({
        label,
        // ratios and rates as the bench prints them (two decimals), or a missing value
        values: fc.array(fc.oneof(fc.integer({ min: 0, max: 1e6 }).map((n) => n / 100), fc.constant(Number.NaN)), { minLength: nSeries, maxLength: nSeries }),
      }),
      { minLength: 1, maxLength: 25 },
    ).filter((gs) => gs.some((g) => g.values.some(Number.isFinite))),
    title: label,
    reference: fc.option(fc.record({ value: fc.double({ min: 0, max: 10, noNaN: true }), name: label }), { nil: undefined }),
  }),
);

describe('bar chart svg', () => {
  it('keeps every label inside the canvas and apart from every other label', () => {
    fc.assert(
      fc.property(chart, ({ series, groups, title, reference }) => {
        const svg = barChartSvg(groups, series, { title, groupLabel: 'drafter', valueLabel: 'ratio', reference });
        const W = Number(/<svg [^>]*width="([\d.]+)"/.exec(svg)![1]), H = Number(/<svg [^>]*height="([\d.]+)"/.exec(svg)![1]);
        const texts = elements(svg, 'text').map((t) => textBox(t.attrs, t.text));
        for (const b of texts) {
          expect(b.x0, `"${b.what}" starts left of the canvas`).toBeGreaterThanOrEqual(0);
          expect(b.x1, `"${b.what}" ends right of the canvas (width ${W})`).toBeLessThanOrEqual(W);
          expect(b.y0).toBeGreaterThanOrEqual(0);
          expect(b.y1).toBeLessThanOrEqual(H);
        }
        for (let i = 0; i < texts.length; i++) {
          for (let j = i + 1; j < texts.length; j++) expect(overlaps(texts[i]!, texts[j]!), `"${texts[i]!.what}" overlaps "${texts[j]!.what}"`).toBe(false);
        }
        for (const r of elements(svg, 'rect')) {
          const x = Number(r.attrs.x ?? 0), y = Number(r.attrs.y ?? 0);
          expect(x + Number(r.attrs.width)).toBeLessThanOrEqual(W);
          expect(y + Number(r.attrs.height)).toBeLessThanOrEqual(H);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('draws each bar from 0 to its value on the value axis, one row per group', () => {
    fc.assert(
      fc.property(chart, ({ series, groups }) => {
        const svg = barChartSvg(groups, series, { title: 't', groupLabel: 'g', valueLabel: 'v' });
        const bars = elements(svg, 'rect').slice(1 + series.length); // the background, the legend swatches, then the bars
        const finite = groups.flatMap((g) => g.values.filter(Number.isFinite));
        expect(bars).toHaveLength(finite.length);
        // the axis: tick labels under the plot, at x = px(tick)
        const ticks = elements(svg, 'text').filter((t) => t.attrs['text-anchor'] === 'middle' && /^[\d.k]+$/.test(t.text));
        const [first, last] = [ticks[0]!, ticks[ticks.length - 1]!];
        const tickValue = (t: string): number => (t.endsWith('k') ? Number(t.slice(0, -1)) * 1000 : Number(t));
        const pxPerUnit = (Number(last.attrs.x) - Number(first.attrs.x)) / (tickValue(last.text) - tickValue(first.text));
        bars.forEach((b, i) => {
          expect(Number(b.attrs.x)).toBeCloseTo(Number(first.attrs.x), 1);
          expect(Math.abs(Number(b.attrs.width) - finite[i]! * pxPerUnit)).toBeLessThanOrEqual(0.1);
        });
        // rows never share pixels: bar tops increase by at least a bar's height
        const tops = bars.map((b) => Number(b.attrs.y));
        for (let i = 1; i < tops.length; i++) expect(tops[i]! - tops[i - 1]!).toBeGreaterThanOrEqual(Number(bars[0]!.attrs.height));
      }),
      { numRuns: 60 },
    );
  });

  it('gives an axis to values too small for a step of their own', () => {
    for (const hi of [Number.MIN_VALUE, 1e-310, 1e-300]) {
      const ticks = niceTicks(0, hi, 6);
      expect(ticks[0]).toBe(0);
      expect(ticks[ticks.length - 1]!).toBeGreaterThanOrEqual(hi);
      expect(() => barChartSvg([{ label: 'a', values: [hi] }], [{ name: 's', color: 'red' }], { title: 't', groupLabel: 'g', valueLabel: 'v' })).not.toThrow();
    }
  });

  it('names the problem with input it cannot draw', () => {
    const series = [{ name: 's', color: 'red' }];
    const opts = { title: 't', groupLabel: 'g', valueLabel: 'v' };
    expect(() => barChartSvg([{ label: 'a', values: [Number.NaN] }], series, opts)).toThrow(/no values/);
    expect(() => barChartSvg([{ label: 'a', values: [-1] }], series, opts)).toThrow(/>= 0, got -1/);
    const twoValues: BarGroup = { label: 'a', values: [1, 2] };
    expect(() => barChartSvg([twoValues], series, opts)).toThrow(/group "a" has 2 values for 1 series/);
  });
});
