/**
 * Choosing the tree size: a cost model in the style of EAGLE-2 / Sequoia.
 *
 * Verifying a tree of T tokens (the root and T - 1 drafts) costs c(T) milliseconds: nearly
 * flat on a GPU, close to linear on a CPU. A step allowed n drafts emits 1 + q sum_{r<n} p_r
 * tokens on average, so the budget is the n with the most expected tokens per millisecond:
 *
 *     rate(n) = (1 + q sum_{r<n} p_r) / (q c(n + 1) + (1 - q) c(1) + s)
 *
 * p_r is the chance that the rank-r draft node (ranked by drafter score) is accepted, q the
 * share of drafting steps in which the drafter proposes anything (a step without drafts
 * verifies the root alone), s the rest of a step's wall time (drafting, the loop's own work)
 * for the kind of step: plain (n = 0: the drafter is not asked, q = 0) or drafting. When no
 * tree beats plain decoding the budget is 0, a plain step: that is how speculative decoding
 * stays no slower than plain decoding where drafting cannot pay.
 *
 * Nothing is measured before generation: every term is learned from the steps themselves
 * (measureVerifyCost can still give c(T) as a prior):
 *  - c(T): the average cost of each tree size verified, and a line a + b (T - 1) fitted to
 *    them, which also reads the sizes not yet seen (VerifyCostCurve);
 *  - p_r, q: decayed counts over drafting steps; a rank never seen is assumed a little less
 *    likely than the rank before it, so a tree grows by a node when that would pay, and the
 *    step then measures the new rank (RankAcceptance);
 *  - s: the wall time between two steps of the same kind, less verification (a step right
 *    after a switch between plain and drafting runs on cold caches: not a steady cost).
 * Averages cap their samples (CappedAverage), so one pause cannot swing a decision.
 *
 * A generation drafts at once with a small tree (START_NODES), runs a few plain steps so that
 * both kinds are measured, then follows the model. The first drafting steps are a trial: they
 * go on while drafting would pay with a drafter as good as the prior assumes, as a few cold or
 * unlucky first steps prove little. Now and then the budget probes the kind of step not in
 * use (BackOff: less often while the probes lose). A guard compares what steady steps really
 * took per emitted token (RealizedSpeed): drafting clearly slower than plain steps is
 * switched off whatever the model says.
 */
import type { Llama } from '../model/llama.js';
import type { TokenTree } from './tree.js';

/** Milliseconds to verify T = 1..maxT tokens on this model and backend: cost[T - 1]. */
export async function measureVerifyCost(model: Llama, maxT: number, opts: { past?: number; repeats?: number } = {}): Promise<Float64Array> {
  maxT = Math.max(1, Math.min(maxT, model.maxBatch));
  const past = Math.min(opts.past ?? 64, model.maxSeq - maxT);
  const repeats = opts.repeats ?? 3;
  const sizes = [...new Set([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, maxT].filter((t) => t <= maxT))].sort((a, b) => a - b);
  const tokens = new Int32Array(maxT).fill(1);
  const positions = new Int32Array(maxT);
  model.reset();
  if (past > 0) await model.forward(new Int32Array(past).fill(1));
  const masks = new Map<number, Float32Array>();
  for (const T of sizes) {
    // a chain: each node sees the cache and the nodes before it
    const m = new Float32Array(T * (past + T)).fill(-Infinity);
    for (let i = 0; i < T; i++) m.fill(0, i * (past + T), i * (past + T) + past + i + 1);
    masks.set(T, m);
  }
  for (let i = 0; i < maxT; i++) positions[i] = past + i;
  // Round-robin over the sizes, the first round only warming up (JIT, caches, pipelines):
  // drift on a shared machine then hits every size alike instead of whichever came first.
  const times = new Map<number, number[]>(sizes.map((T) => [T, []]));
  for (let r = 0; r < repeats + 1; r++) {
    for (const T of sizes) {
      const t0 = performance.now();
      await model.forwardTree(tokens.subarray(0, T), positions.subarray(0, T), masks.get(T)!);
      const ms = performance.now() - t0;
      model.compact([]); // drop the batch again
      if (r > 0) times.get(T)!.push(ms);
    }
  }
  const measured = new Map<number, number>();
  for (const [T, ts] of times) measured.set(T, ts.sort((a, b) => a - b)[ts.length >> 1]!);
  model.reset();
  // linear interpolation between measured sizes, and a non-decreasing cost
  const cost = new Float64Array(maxT);
  for (let T = 1; T <= maxT; T++) {
    let lo = sizes[0]!, hi = sizes[sizes.length - 1]!;
    for (const s of sizes) {
      if (s <= T) lo = s;
      if (s >= T) {
        hi = s;
        break;
      }
    }
    const a = measured.get(lo)!, b = measured.get(hi)!;
    cost[T - 1] = hi === lo ? a : a + ((b - a) * (T - lo)) / (hi - lo);
    if (T > 1) cost[T - 1] = Math.max(cost[T - 1]!, cost[T - 2]!);
  }
  return cost;
}

/** What one step of the speculative loop did, for the budget to learn from. */
export interface StepReport {
  /** the verified tree (the root alone for a plain step) */
  tree: TokenTree;
  /** accepted node indices, in path order */
  accepted: readonly number[];
  /** draft nodes the budget allowed this step: 0 for a plain step; allowed nodes the drafter did not propose count as rejected */
  asked: number;
  /** drafting time as continuous drafting pays it: propose + catching up on what one drafting step adds */
  draftMs: number;
  /** tree building, the tree forward, verification, KV compaction */
  verifyMs: number;
  /** catching the drafter up on tokens from earlier plain steps, beyond what one drafting step adds (a cost of switching, not of drafting) */
  switchMs: number;
}

export interface BudgetPolicy {
  /**
   * A generation starts: whatever ran since the last step of the previous one (other work, a
   * prefill) is no step's cost. Optional; generateSpeculative calls it before the prefill.
   */
  begin?(): void;
  /** drafts to verify this step (0 = a plain step: do not call the drafter) */
  choose(maxBudget: number): number;
  /** after verification: what the step did and what it cost */
  observe(report: StepReport): void;
}

/** A fixed budget (the `--tree-budget N` option). */
export function fixedBudget(n: number): BudgetPolicy {
  return { choose: (max) => Math.min(n, max), observe: () => {} };
}

/** most draft nodes per step on the CPU: verifying grows about linearly there (16 nodes cost 5-6 plain steps), so larger trees never pay */
export const CPU_TREE_CAP = 16;
/** most draft nodes per step elsewhere: on a GPU 32 nodes cost little more than 1 */
export const GPU_TREE_CAP = 32;
/**
 * Drafting steps that run cold in a fresh process on the CPU, and are not measured: their
 * JavaScript (tree building and verification, the drafter's search) is not yet optimised by
 * the JIT, and it is a large share of a CPU step (measured: trees 2 to 4 took 8-13 ms against
 * 3-4 ms later, plain steps 3 ms; proposals 1 to 5 took 1-5 ms against 0.9 later). Elsewhere
 * the JavaScript is a small share of a step, and only the first tree runs cold: it compiles
 * the GPU pipelines of tree verification (Mesa llvmpipe: 1.4 times a later tree; where steps
 * are fast, a compile can take many steps' time). Plain steps run the prefill's code: only
 * the first one is cold, everywhere.
 */
export const CPU_COLD_TREES = 6;

/**
 * The library's default budget for a backend (Backend.name: 'cpu', 'webgpu', ...): an
 * AdaptiveBudget with the backend's tree cap and cold start. Give generateSpeculative
 * `treeBudget: budget.maxNodes` with it. One budget can serve many generations on the same
 * model and drafter (it keeps learning); a new one starts from scratch, drafting a small tree.
 */
export function autoBudget(backendName: string): AdaptiveBudget {
  const cpu = backendName === 'cpu';
  return new AdaptiveBudget({ maxNodes: cpu ? CPU_TREE_CAP : GPU_TREE_CAP, coldTrees: cpu ? CPU_COLD_TREES : 1 });
}

/**
 * A sample this many times the current mean is counted as this many times the mean: one
 * pause (GC, another process) would otherwise move an average by more than the margins
 * compared here, while a real change still gets through in a few steps.
 */
export const OUTLIER_CAP = 1.5;
/** samples a cost average remembers (a new sample weighs 1/this once it has as many): costs drift as caches warm and other work comes and goes */
const COST_MEMORY = 8;
/** drafting steps the acceptance counts remember (they decay by 1 - 1/this per step) */
const ACCEPTANCE_MEMORY = 32;
/** plain or drafting steps the realized speed remembers */
const REALIZED_MEMORY = 16;
/** the acceptance of the best draft node before any is seen: drafters are trained to be right more often than not */
const FIRST_RANK_PRIOR = 0.6;
/**
 * A rank not yet seen is assumed this share as likely as the rank before it: a little
 * optimistic for a drafter whose ranks fall off faster, so a tree grows one node when that
 * would pay at this rate, and the step measures the new rank (a pessimistic prior would
 * keep trees small for good).
 */
const RANK_PRIOR_DECAY = 0.8;
/** drafting steps a prior counts as: few, so that measured steps soon outweigh it */
const PRIOR_STEPS = 2;
/**
 * Before two sizes are verified, one more node is assumed to cost this share of c(1): about a
 * CPU's (16 more nodes cost about 5 plain steps); pessimistic for a GPU, where the first
 * steps correct it.
 */
const PRIOR_SLOPE = 0.25;
/** the prior slope weighs as a tenth of a sample one node away: it settles the slope while a single size is seen, and hardly bends a fit of two */
const PRIOR_SLOPE_WEIGHT = 0.1;
/** a size's weight in the line fit grows with its samples up to this, so a size verified in every step does not silence the others */
const FIT_WEIGHT_CAP = 4;
/** draft nodes in the first steps: small, so a backend where drafting cannot pay loses little while it is measured */
export const START_NODES = 1;
/** steps of each kind measured at the start: one could be a pause (another process), and the first decision rests on them */
const START_SAMPLES = 2;
/** plain steps not measured at the start: see CPU_COLD_TREES */
const COLD_PLAIN_STEPS = 1;
/**
 * Measured drafting steps in a trial (the start-up, and each drafting probe). A trial drafts
 * where the model says drafting loses, as long as it would pay with a drafter as good as the
 * prior assumes: its first steps run cold (JIT, caches; in a probe, right after plain steps),
 * maybe on a busy machine, and a drafter's first few drafts may all miss. A few such steps
 * would otherwise switch off a drafter that pays, and a probe of a drafter that got better
 * would not outweigh the misses the model remembers.
 */
export const TRIAL_STEPS = 8;
/** steps in a probe of plain steps: the first runs cold after the switch, the rest are steady */
export const PROBE_STEPS = 2;
/** the first wait for a probe, in steps: short generations (64-256 tokens) still see a probe or two */
const DEFAULT_EXPLORE_EVERY = 32;
/** the longest wait between probes, in steps */
const MAX_PROBE_WAIT = 1024;
/**
 * Where drafting loses even with a drafter as good as the prior assumes (the costs alone rule
 * it out: verifying grows linearly), the wait for a trial grows with the loss: this share of
 * plain decoding's rate lost doubles the wait, twice this share triples it, and so on. Such a
 * trial can only find the costs changed, and it costs more than it could win back in a short
 * generation (measured: Mesa llvmpipe on a busy 2-core machine, where a tree of 2 costs 2 plain
 * steps).
 */
const PROBE_LOSS_SCALE = 0.05;
/**
 * The guard switches drafting off when its steady steps take this much longer per emitted
 * token than plain steps. The model is calibrated to wall time, so the guard is for gross
 * errors; tokens per drafting step vary from 1 to 5, and a tighter margin would let that
 * noise switch off drafting that pays by a few percent.
 */
const GUARD_MARGIN = 1.05;
/** steady drafting steps the guard needs before it judges */
const GUARD_MIN_STEPS = 4;

const PLAIN = 0;
const DRAFTING = 1;
type StepKind = typeof PLAIN | typeof DRAFTING;

/**
 * An exponential moving average whose samples are capped at `cap` x the current mean. The
 * first `memory` samples are averaged evenly, later ones weigh 1/memory.
 */
export class CappedAverage {
  private mean = 0;
  private samples = 0;

  constructor(
    readonly memory: number,
    readonly cap = OUTLIER_CAP,
  ) {}

  add(x: number): void {
    this.samples++;
    // a mean of 0 (a quantity that was 0 so far) caps nothing: it would stay 0 for good
    const capped = this.mean > 0 ? Math.min(x, this.cap * this.mean) : x;
    this.mean += (capped - this.mean) / Math.min(this.samples, this.memory);
  }

  get count(): number {
    return this.samples;
  }

  /** the average, or `empty` before any sample */
  valueOr(empty: number): number {
    return this.samples > 0 ? this.mean : empty;
  }
}

/** A wait (in steps) that doubles each time it runs out, up to a cap, and starts over on reset(). */
export class BackOff {
  private wait: number;
  private waited = 0;

  /** @param base the first wait; 0 never runs out */
  constructor(
    readonly base: number,
    readonly max = MAX_PROBE_WAIT,
  ) {
    this.wait = base;
  }

  /** one more step waited, `scale` times the base wait this time: true when the wait has run out (the next is then twice as long) */
  due(scale = 1): boolean {
    if (this.base <= 0 || ++this.waited < Math.min(this.wait * scale, this.max)) return false;
    this.waited = 0;
    this.wait = Math.min(2 * this.wait, this.max);
    return true;
  }

  reset(): void {
    this.wait = this.base;
    this.waited = 0;
  }
}

/**
 * c(T), the milliseconds to verify T tokens: each size's CappedAverage, and a line
 * a + b (T - 1) fitted to them by weighted least squares, its slope pulled toward
 * PRIOR_SLOPE x a when few sizes are seen (one size alone says nothing about the slope).
 * The line reads every size, seen or not, and b >= 0 keeps it non-decreasing.
 */
export class VerifyCostCurve {
  private readonly bySize: CappedAverage[]; // [T - 1]
  private a = NaN; // ms at T = 1
  private b = NaN; // ms per node beyond the first
  private fitted = false;
  private sizesSeen = 0;

  /** @param prior measureVerifyCost(...): counted as one sample of each size */
  constructor(readonly maxT: number, prior?: Float64Array) {
    this.bySize = Array.from({ length: maxT }, () => new CappedAverage(COST_MEMORY));
    if (prior) for (let T = 1; T <= Math.min(maxT, prior.length); T++) this.observe(T, prior[T - 1]!);
  }

  observe(T: number, ms: number): void {
    if (T < 1 || T > this.maxT || !(ms >= 0)) return;
    const size = this.bySize[T - 1]!;
    // a size's first sample has no mean of its own to be capped by: once two sizes have drawn
    // the line, the line's value is its cap (a new size's first step often runs cold)
    if (size.count > 0) size.add(ms);
    else size.add(this.sizesSeen++ >= 2 ? Math.min(ms, OUTLIER_CAP * this.at(T)) : ms);
    this.fitted = false;
  }

  /** milliseconds to verify T tokens (NaN before any sample) */
  at(T: number): number {
    if (!this.fitted) this.fit();
    return this.a + this.b * (T - 1);
  }

  private fit(): void {
    let w = 0, sx = 0, sy = 0;
    for (let x = 0; x < this.maxT; x++) {
      const size = this.bySize[x]!, wx = Math.min(size.count, FIT_WEIGHT_CAP);
      w += wx;
      sx += wx * x;
      sy += wx * size.valueOr(0);
    }
    const mx = sx / w, my = sy / w;
    let sxx = 0, sxy = 0;
    for (let x = 0; x < this.maxT; x++) {
      const size = this.bySize[x]!, wx = Math.min(size.count, FIT_WEIGHT_CAP);
      sxx += wx * (x - mx) ** 2;
      sxy += wx * (x - mx) * (size.valueOr(0) - my);
    }
    const priorB = (PRIOR_SLOPE * my) / (1 + PRIOR_SLOPE * mx); // the prior line through the mean point
    this.b = Math.max(0, (sxy + PRIOR_SLOPE_WEIGHT * priorB) / (sxx + PRIOR_SLOPE_WEIGHT));
    this.a = Math.max(0, my - this.b * mx);
    this.fitted = true;
  }
}

/**
 * p_r, the chance that the rank-r draft node (by drafter score, best first) is accepted, and
 * q, the share of drafting steps in which the drafter proposed anything. Decayed counts over
 * drafting steps, each rank with PRIOR_STEPS steps of its prior.
 */
export class RankAcceptance {
  private readonly hits: Float64Array; // decayed: rank-r node accepted
  private readonly seen: Float64Array; // decayed: rank-r node verified (or allowed and not proposed)
  private readonly p: Float64Array;
  private readonly ranked: Int32Array; // scratch: a tree's draft nodes, best score first
  private readonly proposed = new CappedAverage(ACCEPTANCE_MEMORY, Infinity);
  private current = false;

  constructor(readonly maxRanks: number) {
    this.hits = new Float64Array(maxRanks);
    this.seen = new Float64Array(maxRanks);
    this.p = new Float64Array(maxRanks);
    this.ranked = new Int32Array(maxRanks + 1);
  }

  /** a drafting step: `asked` nodes allowed, the tree verified, the nodes accepted */
  observe(tree: TokenTree, accepted: readonly number[], asked: number): void {
    this.proposed.add(tree.size > 1 ? 1 : 0);
    if (tree.size === 1) return; // nothing proposed: q counts it, no rank was tried
    const nodes = Math.min(tree.size - 1, this.maxRanks);
    // insertion sort by score, best first (ties: the earlier node); trees are small
    for (let i = 0; i < nodes; i++) {
      let j = i;
      while (j > 0 && tree.score[this.ranked[j - 1]!]! < tree.score[i + 1]!) {
        this.ranked[j] = this.ranked[j - 1]!;
        j--;
      }
      this.ranked[j] = i + 1;
    }
    // every rank fades, tried or not: a rank not tried for long drifts back to its prior, and
    // a tree grows to try it again when that prior says it would pay. Ranks allowed but left
    // empty by the drafter count as misses.
    const decay = 1 - 1 / ACCEPTANCE_MEMORY, tried = Math.max(nodes, asked);
    for (let r = 0; r < this.maxRanks; r++) {
      this.seen[r] = decay * this.seen[r]! + (r < tried ? 1 : 0);
      this.hits[r] = decay * this.hits[r]! + (r < nodes && accepted.includes(this.ranked[r]!) ? 1 : 0);
    }
    this.current = false;
  }

  /** p_r */
  at(r: number): number {
    if (!this.current) {
      let prior = FIRST_RANK_PRIOR;
      for (let i = 0; i < this.maxRanks; i++) {
        this.p[i] = (this.hits[i]! + PRIOR_STEPS * prior) / (this.seen[i]! + PRIOR_STEPS);
        prior = RANK_PRIOR_DECAY * this.p[i]!;
      }
      this.current = true;
    }
    return this.p[r]!;
  }

  /** q (1 before any drafting step) */
  proposing(): number {
    return this.proposed.valueOr(1);
  }
}

/** What steady steps of one kind really took per emitted token: total ms over total tokens. */
export class RealizedSpeed {
  // two averages with the same weights: their ratio is the (decayed) total ms over the total
  // tokens, so a step that emitted 4 tokens weighs 4 times one that emitted 1 (a mean of
  // per-step ratios would overstate the cost of drafting, whose steps emit 1 to 5 tokens)
  private readonly ms = new CappedAverage(REALIZED_MEMORY);
  private readonly tokens = new CappedAverage(REALIZED_MEMORY, Infinity);

  add(ms: number, tokens: number): void {
    this.ms.add(ms);
    this.tokens.add(tokens);
  }

  get steps(): number {
    return this.ms.count;
  }

  /** NaN before any step */
  msPerToken(): number {
    return this.ms.valueOr(NaN) / this.tokens.valueOr(NaN);
  }
}

export interface AdaptiveBudgetOptions {
  /** most draft nodes per step (the tree less its root); give the loop `treeBudget: maxNodes` */
  maxNodes: number;
  /** measureVerifyCost(model, maxNodes + 1): a prior for c(T), which the steps measure anyway */
  verifyCost?: Float64Array;
  /** steps before the first probe of the kind of step not in use (doubling while probes lose); 0: no probes. Default 32 */
  exploreEvery?: number;
  /** trees at the start not measured, as they run cold (code being compiled); default 1. See CPU_COLD_TREES */
  coldTrees?: number;
  /** the clock in milliseconds (default performance.now) */
  now?: () => number;
}

export class AdaptiveBudget implements BudgetPolicy {
  readonly maxNodes: number;
  private readonly coldTrees: number;
  private readonly cost: VerifyCostCurve;
  private readonly acceptance: RankAcceptance;
  /** s, the rest of a steady step's wall time beyond verification, per kind */
  private readonly rest = [new CappedAverage(COST_MEMORY), new CappedAverage(COST_MEMORY)];
  private readonly realized = [new RealizedSpeed(), new RealizedSpeed()];
  private readonly plainProbes: BackOff; // while drafting
  private readonly draftProbes: BackOff; // while plain
  private readonly now: () => number;
  private plainProbeLeft = 0; // plain steps of the probe still to choose
  private trialLeft = TRIAL_STEPS; // drafting steps of the trial still to choose (the start-up is one)
  private draftingSteps = 0; // drafting steps observed
  private plainSteps = 0; // plain steps observed
  // the step being timed: chosen at `stepStart`, observed, closed by the next choose()
  private stepStart = NaN;
  private stepKind: StepKind | null = null; // null: not observed (nothing to close)
  private stepVerifyMs = 0;
  private stepSwitchMs = 0;
  private stepTokens = 0;
  private lastKind: StepKind | null = null; // the kind of the last step closed

  constructor(opts: AdaptiveBudgetOptions) {
    const { maxNodes, exploreEvery = DEFAULT_EXPLORE_EVERY, coldTrees = 1 } = opts;
    if (!(Number.isInteger(maxNodes) && maxNodes >= 0)) throw new RangeError(`AdaptiveBudget: maxNodes must be an integer >= 0, got ${maxNodes}`);
    if (!(Number.isInteger(exploreEvery) && exploreEvery >= 0)) throw new RangeError(`AdaptiveBudget: exploreEvery must be an integer >= 0, got ${exploreEvery}`);
    if (!(Number.isInteger(coldTrees) && coldTrees >= 0)) throw new RangeError(`AdaptiveBudget: coldTrees must be an integer >= 0, got ${coldTrees}`);
    this.maxNodes = maxNodes;
    this.coldTrees = coldTrees;
    this.cost = new VerifyCostCurve(maxNodes + 1, opts.verifyCost);
    this.acceptance = new RankAcceptance(maxNodes);
    this.plainProbes = new BackOff(exploreEvery);
    this.draftProbes = new BackOff(exploreEvery);
    this.now = opts.now ?? (() => performance.now());
  }

  /** expected tokens per ms of a step allowed n drafts, of which `expectedAccepted` = sum_{r<n} p_r (the header's formula) */
  private rateOf(n: number, expectedAccepted: number): number {
    const q = n > 0 ? this.acceptance.proposing() : 0;
    const restMs = this.rest[n > 0 ? DRAFTING : PLAIN]!.valueOr(0);
    return (1 + q * expectedAccepted) / (q * this.cost.at(n + 1) + (1 - q) * this.cost.at(1) + restMs);
  }

  /** expected tokens per ms with n drafts (0: a plain step); NaN before any step is measured */
  rate(n: number): number {
    let expected = 0;
    for (let r = 0; r < n; r++) expected += this.acceptance.at(r);
    return this.rateOf(n, expected);
  }

  /** the model's milliseconds to verify T tokens */
  verifyMs(T: number): number {
    return this.cost.at(T);
  }

  /** estimated acceptance chance of the rank-r draft node */
  acceptanceOf(r: number): number {
    return this.acceptance.at(r);
  }

  /** realized ms per emitted token of steady plain (0) or drafting (1) steps; NaN before any */
  realizedMsPerToken(kind: StepKind): number {
    return this.realized[kind]!.msPerToken();
  }

  begin(): void {
    // the gap since the previous generation's last step (and its prefill) is no step's time
    this.stepKind = null;
    this.lastKind = null;
  }

  choose(maxBudget: number): number {
    this.closeStep();
    this.stepStart = this.now();
    const room = Math.min(maxBudget, this.maxNodes);
    return room > 0 ? this.decide(room) : 0;
  }

  private decide(room: number): number {
    // 1. A probe of plain steps runs to its end.
    if (this.plainProbeLeft > 0) {
      this.plainProbeLeft--;
      return 0;
    }
    // 2. Start-up: draft at once, a small tree, until trees run warm and a few are measured;
    // then plain steps, so that both kinds are measured.
    if (this.draftingSteps < this.coldTrees + START_SAMPLES) {
      if (this.draftingSteps >= this.coldTrees) this.trialLeft--; // cold steps measure nothing
      return Math.min(START_NODES, room);
    }
    if (this.plainSteps < COLD_PLAIN_STEPS + START_SAMPLES) return 0;
    // 3. The model. Each n is rated twice: with the acceptance measured, and with an acceptance
    // no worse than the prior's, the rate drafting would reach with a drafter as good as
    // assumed. Where even that loses, the costs alone rule drafting out.
    const rate0 = this.rateOf(0, 0);
    let best = 0, bestRate = rate0, bestDrafting = 1, bestDraftingRate = 0, hopefulRate = 0;
    let expected = 0, hopeful = 0, prior = FIRST_RANK_PRIOR;
    for (let n = 1; n <= room; n++) {
      const p = this.acceptance.at(n - 1);
      expected += p;
      hopeful += Math.max(p, prior);
      prior *= RANK_PRIOR_DECAY;
      const r = this.rateOf(n, expected);
      if (r > bestDraftingRate) {
        bestDrafting = n;
        bestDraftingRate = r;
      }
      if (r > bestRate) {
        best = n;
        bestRate = r;
      }
      hopefulRate = Math.max(hopefulRate, this.rateOf(n, hopeful));
    }
    const hopefulLoss = 1 - hopefulRate / rate0;
    // 4. Drafting, when it pays and the guard has not seen it emit tokens clearly more slowly
    // than plain steps; in a trial also when it loses, unless the costs alone rule it out. Now
    // and then a probe of plain steps keeps plain decoding's cost current.
    const pays = best > 0 && !this.guardSaysSlower();
    const trial = this.trialLeft > 0 && hopefulLoss < 0;
    if (pays || trial) {
      if (pays) this.draftProbes.reset();
      if (trial) this.trialLeft--;
      else if (this.plainProbes.due()) return this.probePlain();
      return pays ? best : bestDrafting;
    }
    // 5. Plain steps, and now and then a trial of drafting: its steps correct the acceptance and
    // costs the model judged by (the wait: see PROBE_LOSS_SCALE).
    this.trialLeft = 0;
    this.plainProbes.reset();
    if (!this.draftProbes.due(1 + Math.max(0, hopefulLoss) / PROBE_LOSS_SCALE)) return 0;
    this.trialLeft = TRIAL_STEPS - 1;
    return bestDrafting;
  }

  /** PROBE_STEPS plain steps, the first being this one */
  private probePlain(): number {
    this.plainProbeLeft = PROBE_STEPS - 1;
    return 0;
  }

  /** steady drafting steps have emitted tokens more slowly than plain steps, by more than GUARD_MARGIN */
  private guardSaysSlower(): boolean {
    const drafting = this.realized[DRAFTING]!, plain = this.realized[PLAIN]!;
    if (drafting.steps < GUARD_MIN_STEPS) return false;
    // too few steady plain steps: the model's plain step (its tokens per ms is one over its ms per token)
    const plainMsPerToken = plain.steps >= GUARD_MIN_STEPS ? plain.msPerToken() : 1 / this.rateOf(0, 0);
    return drafting.msPerToken() > GUARD_MARGIN * plainMsPerToken;
  }

  observe({ tree, accepted, asked, verifyMs, switchMs }: StepReport): void {
    const kind = asked > 0 ? DRAFTING : PLAIN;
    const cold = kind === DRAFTING ? this.draftingSteps < this.coldTrees : this.plainSteps < COLD_PLAIN_STEPS;
    if (!cold) this.cost.observe(tree.size, verifyMs);
    if (kind === DRAFTING) {
      this.draftingSteps++;
      this.acceptance.observe(tree, accepted, asked);
    } else this.plainSteps++;
    this.stepKind = cold ? null : kind; // null: not timed either
    if (cold) this.lastKind = kind; // the next step of this kind runs steady
    this.stepVerifyMs = verifyMs;
    this.stepSwitchMs = switchMs;
    this.stepTokens = 1 + accepted.length;
  }

  /**
   * The wall time of the step just observed (from its choose() to this one, less the cost of
   * switching) into its kind's rest-of-step average and realized speed, if it was steady: of
   * the same kind as the step before it.
   */
  private closeStep(): void {
    const kind = this.stepKind;
    if (kind === null) return;
    this.stepKind = null;
    const wallMs = Math.max(0, this.now() - this.stepStart - this.stepSwitchMs);
    if (kind === this.lastKind) {
      this.rest[kind]!.add(Math.max(0, wallMs - this.stepVerifyMs));
      this.realized[kind]!.add(wallMs, this.stepTokens);
    }
    this.lastKind = kind;
  }
}
