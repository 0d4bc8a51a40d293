/**
 * Choosing the tree size: a cost model in the style of EAGLE-2 / Sequoia.
 *
 * Verifying a tree of T tokens (root + T-1 drafts) costs c(T) milliseconds; it is cheap per
 * token on a GPU (c(16) is barely c(1)) and close to linear on a CPU. A tree of n drafts
 * emits 1 + E[accepted | n] tokens. So the best budget maximises
 *
 *     rate(n) = (1 + q sum_{r < n} p_r) / (q c(n + 1) + (1 - q) c(1) + draftMs + o_1)
 *     rate(0) = 1 / (c(1) + o_0)
 *
 * where p_r is the chance that the r-th best draft node (by drafter score) is accepted when
 * the drafter proposes, q the share of steps in which it proposes anything at all (prompt
 * lookup often finds no match: such a step verifies the root alone), and o_0, o_1 what a
 * plain or a drafting step takes beyond its verify and draft time (the loop's own work).
 * All of them are measured online, from steady steps: a step right after a switch between
 * plain and drafting runs on cold caches and is left out, and the draft time is sampled from
 * the third drafting step in a row on (see speculative.ts for the catch-up it includes).
 * If no n beats plain decoding, the budget is 0: the step is a plain decode step and the
 * drafter is not even asked, which is how speculative decoding stays (nearly) no slower than
 * plain decoding on every backend.
 *
 * What keeps the estimates honest (choose() numbers the cases):
 *  - the first 8 drafting steps always draft, so acceptance is measured, not assumed;
 *  - probes, short runs (PROBE_STEPS) of the kind of step not in use: drafting while the
 *    budget is 0, plain steps while it drafts, after `exploreEvery` steps, then after twice
 *    as many each time (up to 1024; close calls stay frequent);
 *  - now and then a tree one node larger than asked, so the next rank's p_r is seen;
 *  - a guard: the wall time actually spent per emitted token (total time over total tokens)
 *    in steady plain and drafting steps; while drafting is clearly slower (GUARD_MARGIN),
 *    the budget is 0 whatever the model says.
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

/** steps in a probe: a short run of the kind of step not in use (its first runs cold) */
export const PROBE_STEPS = 6;
/**
 * The guard overrules the model only when drafting steps are this much slower per token. The
 * model is calibrated to wall time (it charges each kind of step its measured overhead), so
 * the guard is there for gross errors; the realized speeds are noisy (tokens per drafting step
 * vary from 1 to 5), and without a margin that noise switched drafting off where it paid by
 * about 5% (the CPU: steady drafting 0.37 ms per token, plain 0.41).
 */
const GUARD_MARGIN = 1.05;
/**
 * the draft cost is sampled from the 3rd drafting step in a row on: right after plain steps
 * the drafter's weights are out of the caches, and a cost measured there (in a probe, say)
 * is not what continuous drafting pays (measured: 0.32 ms vs 0.20 ms on the CPU)
 */
const WARM_DRAFT_STEP = 3;
/** drafting steps at the start that always draft (at least 4 nodes), to measure acceptance and cost */
const INITIAL_DRAFT_STEPS = 8;
/** a drafting rate at least this share of plain decoding's is a close call: probed every 4 x exploreEvery steps, not less and less often */
const CLOSE_CALL = 0.95;
/**
 * ... and only if drafting would add at least this many tokens per step: a drafter that
 * (nearly) never proposes costs about nothing, so it looks close while it has nothing to win
 */
const CLOSE_CALL_GAIN = 0.1;
/** per-sample decay of the realized-speed sums (a memory of about 30 steps of each kind) */
const REALIZED_DECAY = 0.97;

export class AdaptiveBudget implements BudgetPolicy {
  private accepted: Float64Array; // decayed counts: node of rank r accepted
  private seen: Float64Array; // decayed counts: node of rank r verified
  private draftMs = 0;
  private draftSamples = 0;
  private proposed = 1; // decayed count of drafting steps with drafts (prior: 1 of 1)
  private askedSteps = 1;
  // realized speed, [plain steps, drafting steps]: decayed sums of wall ms and of emitted
  // tokens (their ratio is the ms per token; a mean of per-step ratios would weigh a drafting
  // step that emitted 1 token like one that emitted 4, and so overstate drafting's cost), and
  // sample counts. Only steps of the same kind as the step before count: a switch between
  // drafting and plain steps runs on cold caches, which is not either kind's steady cost.
  private realizedMs = new Float64Array(2);
  private realizedTokens = new Float64Array(2);
  private realizedSteps = new Float64Array(2); // decayed step counts
  private realizedSamples = new Float64Array(2);
  private prevKind = -1; // the kind (0 plain, 1 drafting) of the last step recorded; -1 none
  // what a step takes beyond its verify and draft time (the loop's own work: emitting tokens,
  // queueing them for the drafter, building the tree...), per kind, from steady steps: the
  // model charges it, so its rates are wall-clock rates
  private overheadMs = new Float64Array(2);
  private overheadSamples = new Float64Array(2);
  private lastAccountedMs = NaN; // verify + draft ms of the step being timed
  private switching = false; // this step's kind differs from the last step's
  private lastChooseAt = 0;
  private lastChoice = -1; // -1: nothing to attribute yet
  private lastTokens = 0;
  private lastSwitchMs = 0;
  private sinceGuard = 0; // steps the guard has held drafting off since its last re-test
  private sinceCheck = 0; // drafting steps since the last probe of plain steps
  private checkEvery: number; // drafting steps between probes of plain steps
  private probeKind = 0; // the kind of step probed: 0 plain, 1 drafting
  private probeLeft = 0; // steps left to choose in the current probe
  private retested = false; // a re-test has run since the guard last let drafting through
  private guardEvery: number; // plain steps between re-tests
  private interval: number; // plain steps between explorations (doubles while exploring fails)
  private sinceExplore = 0;
  private sinceGrow = 0; // drafting steps since a tree was grown past the model's size
  private draftingRun = 0; // drafting steps in a row, this one included

  /**
   * @param verifyCost  measureVerifyCost(...) of this model and backend
   * @param prior       initial acceptance estimate of the best node, halved per rank
   */
  constructor(
    readonly verifyCost: Float64Array, // copied: observe() refines it
    readonly opts: { decay?: number; exploreEvery?: number; prior?: number } = {},
  ) {
    this.verifyCost = Float64Array.from(verifyCost);
    const n = verifyCost.length;
    this.accepted = new Float64Array(n);
    this.seen = new Float64Array(n);
    this.interval = opts.exploreEvery ?? 0;
    this.guardEvery = opts.exploreEvery ?? 0;
    this.checkEvery = opts.exploreEvery ?? 0;
    const prior = opts.prior ?? 0.6;
    for (let r = 0; r < n; r++) {
      this.seen[r] = 1;
      this.accepted[r] = prior * 0.5 ** r;
    }
  }

  /** estimated acceptance chance of the rank-r node */
  acceptance(r: number): number {
    return this.accepted[r]! / this.seen[r]!;
  }

  /** share of drafting steps in which the drafter proposed anything (the rest verify the root alone) */
  proposing(): number {
    return this.proposed / this.askedSteps;
  }

  /**
   * expected tokens per millisecond with n drafts: with chance q the drafter proposes and the
   * step verifies n + 1 tokens, else it verifies the root alone; drafting is paid either way
   */
  rate(n: number): number {
    if (n === 0) return 1 / (this.verifyCost[0]! + this.overheadMs[0]!);
    let tokens = 0;
    for (let r = 0; r < n; r++) tokens += this.acceptance(r);
    const q = this.proposing();
    return (1 + q * tokens) / (q * this.verifyCost[n]! + (1 - q) * this.verifyCost[0]! + this.draftMs + this.overheadMs[1]!);
  }

  /** milliseconds a plain (0) or drafting (1) step takes beyond its verify and draft time */
  stepOverheadMs(kind: 0 | 1): number {
    return this.overheadMs[kind]!;
  }

  begin(): void {
    this.lastChoice = -1; // the gap since the previous generation's last step is no step's time
    this.prevKind = -1;
  }

  /** realized milliseconds per emitted token of plain (0) or drafting (1) steps; NaN before any sample */
  realizedMsPerToken(kind: 0 | 1): number {
    return this.realizedSamples[kind]! > 0 ? this.realizedMs[kind]! / this.realizedTokens[kind]! : NaN;
  }

  choose(maxBudget: number): number {
    this.recordRealized();
    const max = Math.min(maxBudget, this.verifyCost.length - 1);
    // rate(n) for every n in one pass: expected tokens is a running sum over ranks
    const q = this.proposing(), c1 = this.verifyCost[0]!, fixedMs = this.draftMs + this.overheadMs[1]!;
    let best = 0, bestRate = this.rate(0), tokens = 0, bestDrafting = Math.min(1, max), bestDraftingRate = 0, bestDraftingGain = 0;
    for (let n = 1; n <= max; n++) {
      tokens += this.acceptance(n - 1);
      const r = (1 + q * tokens) / (q * this.verifyCost[n]! + (1 - q) * c1 + fixedMs);
      if (r > bestRate) {
        best = n;
        bestRate = r;
      }
      if (r > bestDraftingRate) {
        bestDrafting = n;
        bestDraftingRate = r;
        bestDraftingGain = q * tokens;
      }
    }
    const every = this.opts.exploreEvery ?? 0;
    // 1. Start-up: the first drafting steps measure instead of trusting the prior. A
    // pessimistic prior (acceptance 0.6, halved per rank) against a first cold draft-cost
    // sample often said no before a single deeper rank had been seen, then rarely looked again.
    if (this.draftSamples < INITIAL_DRAFT_STEPS && max > 0) return this.chosen(Math.min(max, Math.max(bestDrafting, 4)));
    // 2. A probe (a short run of the kind of step not in use) runs to its end.
    if (this.probeLeft > 0) {
      this.probeLeft--;
      return this.chosen(this.probeKind === 1 ? bestDrafting : 0);
    }
    // 3. The guard. The model is calibrated to wall time, but what the steps really took is
    // known: if steady drafting steps have emitted tokens more slowly than steady plain steps
    // (by more than GUARD_MARGIN), believe that and go plain. Drafting is re-tested after
    // `exploreEvery` plain steps, then after twice as many each time it loses (up to 1024),
    // so a slow start cannot switch a good drafter off for good.
    if (best > 0 && this.realizedSamples[1]! >= 8 && this.realizedMsPerToken(1) > GUARD_MARGIN * this.plainMsPerToken()) {
      this.checkEvery = every;
      this.sinceCheck = 0;
      if (every > 0 && ++this.sinceGuard >= this.guardEvery) {
        if (this.retested) this.guardEvery = Math.min(2 * this.guardEvery, 1024);
        this.retested = true;
        this.sinceGuard = 0;
        return this.startProbe(1, best);
      }
      return this.chosen(0);
    }
    this.retested = false;
    this.guardEvery = every;
    // 4. The model says draft (or there is no exploring). Now and then a probe of plain steps
    // keeps the guard's plain speed current (after exploreEvery drafting steps, then twice as
    // many each time, up to 1024): drafting is judged against what plain steps take now.
    if (best > 0 || every === 0) {
      this.interval = every;
      this.sinceExplore = 0;
      if (best > 0 && every > 0 && ++this.sinceCheck >= this.checkEvery) {
        this.sinceCheck = 0;
        this.checkEvery = Math.min(2 * this.checkEvery, 1024);
        return this.startProbe(0, 0);
      }
      // a node of rank r is only seen in trees of more than r nodes: now and then verify one
      // node more than the model asks for, so the acceptance of the next rank is measured, not
      // left at the prior (a pessimistic prior would otherwise keep trees small for good)
      if (best > 0 && best < max && every > 0 && ++this.sinceGrow >= every) {
        this.sinceGrow = 0;
        return this.chosen(best + 1);
      }
      return this.chosen(best);
    }
    // 5. The model says drafting does not pay: probe it now and then (the probe's steady steps
    // correct the drafting cost and acceptance), less often each time, unless the call was
    // close (CLOSE_CALL, CLOSE_CALL_GAIN): then the estimates' noise can decide it, so the
    // probes stay frequent
    if (++this.sinceExplore < this.interval) return this.chosen(0);
    this.sinceExplore = 0;
    const close = bestDraftingRate >= CLOSE_CALL * bestRate && bestDraftingGain >= CLOSE_CALL_GAIN;
    this.interval = close ? 4 * every : Math.min(2 * this.interval, 1024);
    return this.startProbe(1, bestDrafting);
  }

  /** start a probe: PROBE_STEPS steps of this kind, the first being this one of size n */
  private startProbe(kind: 0 | 1, n: number): number {
    this.probeKind = kind;
    this.probeLeft = PROBE_STEPS - 1;
    return this.chosen(n);
  }

  private chosen(n: number): number {
    this.switching = this.prevKind !== (n > 0 ? 1 : 0);
    this.draftingRun = n > 0 ? this.draftingRun + 1 : 0;
    return (this.lastChoice = n);
  }

  /** the wall time since the last choice and the tokens that step emitted, into the plain or drafting sums */
  private recordRealized(): void {
    const now = performance.now();
    if (this.lastChoice >= 0 && this.lastTokens > 0) {
      const k = this.lastChoice > 0 ? 1 : 0, tokens = this.lastTokens;
      let ms = Math.max(0, now - this.lastChooseAt - this.lastSwitchMs);
      if (this.prevKind === k && Number.isFinite(this.lastAccountedMs)) {
        const over = Math.max(0, ms - this.lastAccountedMs), prev = this.overheadMs[k]!;
        this.overheadMs[k] = this.overheadSamples[k] === 0 ? over : 0.9 * prev + 0.1 * Math.min(over, Math.max(3 * prev, 0.05));
        this.overheadSamples[k]!++;
      }
      if (this.prevKind === k) {
        // outliers (a pause: GC, another process) capped at 1.5 times the mean step: one
        // uncapped pause would move the sums by more than the margins compared here
        if (this.realizedSamples[k]! > 0) ms = Math.min(ms, (1.5 * this.realizedMs[k]!) / this.realizedSteps[k]!);
        this.realizedMs[k] = REALIZED_DECAY * this.realizedMs[k]! + ms;
        this.realizedTokens[k] = REALIZED_DECAY * this.realizedTokens[k]! + tokens;
        this.realizedSteps[k] = REALIZED_DECAY * this.realizedSteps[k]! + 1;
        this.realizedSamples[k]!++;
      }
      this.prevKind = k;
    }
    this.lastChooseAt = now;
    this.lastChoice = -1;
    this.lastTokens = 0;
    this.lastSwitchMs = 0;
    this.lastAccountedMs = NaN;
  }

  /** plain decoding's realized milliseconds per token, or the measured c(1) before there are enough plain steps */
  private plainMsPerToken(): number {
    return this.realizedSamples[0]! >= 8 ? this.realizedMsPerToken(0) : this.verifyCost[0]!;
  }

  observe({ tree, accepted, draftMs, verifyMs, asked, switchMs }: StepReport): void {
    const decay = this.opts.decay ?? 0.98;
    // the start-up calibration is a few samples on a possibly busy machine: keep correcting
    // the cost of the tree sizes actually verified, and keep the curve non-decreasing
    if (verifyMs !== undefined && verifyMs > 0 && tree.size <= this.verifyCost.length) {
      const c = this.verifyCost, i = tree.size - 1;
      // a sample far above the estimate is usually a pause (GC, another process), not a new
      // cost: cap its pull, so one outlier cannot lift every larger size through the max below
      c[i] = 0.9 * c[i]! + 0.1 * Math.min(verifyMs, 1.5 * c[i]!);
      for (let i = tree.size; i < c.length; i++) c[i] = Math.max(c[i]!, c[i - 1]!);
      for (let i = tree.size - 2; i >= 0; i--) c[i] = Math.min(c[i]!, c[i + 1]!);
    }
    this.lastTokens = 1 + accepted.length;
    this.lastSwitchMs = switchMs;
    this.lastAccountedMs = verifyMs === undefined ? NaN : verifyMs + draftMs;
    if (asked === 0) return; // a plain step: nothing drafted, nothing to learn about drafts
    // how often the drafter proposes at all; a step without drafts verified the root alone
    this.askedSteps = this.askedSteps * decay + 1;
    this.proposed = this.proposed * decay + (tree.size > 1 ? 1 : 0);
    // rank the tree's draft nodes by score, best first (node 0 is the root); in a step with
    // drafts, ranks the drafter left empty (fewer nodes than allowed) count as misses
    const nodes = Array.from({ length: tree.size - 1 }, (_, i) => i + 1).sort((a, b) => tree.score[b]! - tree.score[a]! || a - b);
    const hit = new Set(accepted);
    for (let r = 0; r < (nodes.length > 0 ? Math.max(nodes.length, asked) : 0) && r < this.seen.length; r++) {
      this.seen[r] = this.seen[r]! * decay + 1;
      this.accepted[r] = this.accepted[r]! * decay + (r < nodes.length && hit.has(nodes[r]!) ? 1 : 0);
    }
    // the first drafting step of a generation run, and the first WARM_DRAFT_STEP - 1 steps
    // after plain steps, run cold (JIT, caches the base model took): skip them, as what
    // matters is drafting's cost when it runs every step; cap the pull of outliers as for
    // the verify cost
    if (++this.draftSamples === 1 || ((this.switching || this.draftingRun < WARM_DRAFT_STEP) && this.draftMs > 0)) return;
    this.draftMs = this.draftMs === 0 ? draftMs : 0.9 * this.draftMs + 0.1 * Math.min(draftMs, 1.5 * this.draftMs);
  }
}
