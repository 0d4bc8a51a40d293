// The explainer's panels, one function each, in the order a drafting step runs:
//   renderFrames    1. the CTC head's S frames: per frame a distribution over tokens + BLANK
//   renderBestPath  2. the best path (argmax per frame) and its collapse into a draft
//   renderBeam      3. the prefix beam search's candidates: distinct drafts, total probability
//   renderTree      4. the candidates merged into a token tree; what the base model accepted
//   renderMask      5. the tree's attention mask: what each node may look at in the one forward
//   renderText      6. the text, growing by the accepted tokens and the bonus token
//   renderStats     7. tokens per step and tokens per second so far
//   renderRace      8. the same prompt decoded plainly, on the same clock
// Each takes its panel's body element and the view of one step (see `view` in main.js):
//   { step, steps, index, label(id), decode(ids), prompt, drafterName, plain, result }
// and redraws the body from that alone, so going back and forth shows the same pictures.
import { el, fixed, heat, heatText, percent, setContent, svg, svgText } from './dom.js';
import { treeAttentionMask } from '../../dist/src/index.js';

/** tokens shown per frame in the heat map (the likeliest), BLANK always shown besides */
const TOP_PER_FRAME = 3;
/** most rows in the heat map, BLANK included: more would not fit the panel */
const MAX_HEAT_ROWS = 12;
/** characters of a token shown inside a tree node or a row label (the tooltip has all of it) */
const NODE_CHARS = 7;

/** Why the frames panel has nothing to draw on this step, in the words of the step's kind. */
function noDraftNote(step, drafterName) {
  if (step.kind === 'prefill') return 'Step 0 is the prefill: the base model reads the prompt in one forward and emits its first token. Drafting starts at step 1.';
  if (step.kind === 'plain') return 'A plain step: the tree budget chose not to draft here (drafting did not pay), so the base model emitted one token.';
  return `The ${drafterName} drafter has no CTC frames: its candidates are in panel 3.`;
}

/** the same, short, for the panels after the frames */
const nothingDrafted = (step) => `${step.kind === 'prefill' ? 'The prefill' : 'A plain step'}: nothing drafted.`;

const note = (text) => el('p', { class: 'empty' }, text);

// ---- 1. frames ---------------------------------------------------------------------------

/**
 * The head's output: S frames (columns), each a probability distribution over the vocabulary
 * and BLANK (∅). Rows are BLANK and the tokens that rank in some frame's top few; the colour
 * is the probability. The outlined cell of each column is that frame's argmax: the best path.
 * A token held over several frames, or frames of BLANK between tokens, is how one frame path
 * spells a draft shorter than S.
 */
export function renderFrames(body, view) {
  const { step, label } = view;
  if (!step.frames) return setContent(body, note(noDraftNote(step, view.drafterName)));
  const { frames: S, classes: C, logProbs, blankClass } = step.frames;
  const prob = (t, c) => Math.exp(logProbs[t * C + c]);
  const best = bestPathClasses(step.frames);
  const rows = heatRows(step.frames, best);

  const labelW = 78, cellW = 36, cellH = 19, headH = 16;
  const picture = svg('svg', { width: labelW + S * cellW + 2, height: headH + rows.length * cellH + 2, class: 'heatmap', role: 'img' });
  for (let t = 0; t < S; t++) picture.append(svgText(labelW + t * cellW + cellW / 2, headH - 4, `f${t + 1}`, { class: 'axis', 'text-anchor': 'middle' }));
  rows.forEach((c, r) => {
    const y = headH + r * cellH;
    const name = c === blankClass ? '∅ blank' : label(classToken(step.frames, c));
    picture.append(svgText(labelW - 6, y + cellH - 5, name, { class: c === blankClass ? 'row-label blank' : 'row-label', 'text-anchor': 'end' }, 10));
    for (let t = 0; t < S; t++) {
      const p = prob(t, c);
      picture.append(
        svg('rect', { class: best[t] === c ? 'cell best' : 'cell', x: labelW + t * cellW, y, width: cellW - 1, height: cellH - 1, fill: heat(p) },
          svg('title', {}, `frame ${t + 1}, ${name}: p = ${percent(p)}`)),
        p >= 0.01 ? svgText(labelW + t * cellW + cellW / 2, y + cellH - 5, percent(p), { class: 'cell-text', fill: heatText(p), 'text-anchor': 'middle' }) : null,
      );
    }
  });
  setContent(body, picture);
}

/** the heat map's rows (classes): BLANK first, then each frame's argmax and top tokens, in order of first appearance */
function heatRows(frames, best) {
  const { frames: S, classes: C, logProbs, blankClass } = frames;
  const rows = [blankClass];
  const add = (c) => rows.length < MAX_HEAT_ROWS && !rows.includes(c) && rows.push(c);
  best.forEach(add);
  for (let t = 0; t < S; t++) topClasses(logProbs.subarray(t * C, (t + 1) * C), TOP_PER_FRAME, blankClass).forEach(add);
  return rows;
}

/** the k likeliest classes of one frame, BLANK left out */
function topClasses(frameLogProbs, k, blankClass) {
  const top = [];
  for (let c = 0; c < frameLogProbs.length; c++) {
    if (c === blankClass) continue;
    if (top.length < k || frameLogProbs[c] > frameLogProbs[top[top.length - 1]]) {
      top.push(c);
      top.sort((a, b) => frameLogProbs[b] - frameLogProbs[a]);
      if (top.length > k) top.pop();
    }
  }
  return top;
}

/** the argmax class of every frame */
function bestPathClasses({ frames: S, classes: C, logProbs }) {
  const best = [];
  for (let t = 0; t < S; t++) {
    let arg = 0;
    for (let c = 1; c < C; c++) if (logProbs[t * C + c] > logProbs[t * C + arg]) arg = c;
    best.push(arg);
  }
  return best;
}

/** the token a class stands for (a head with a shortlist numbers its classes differently) */
const classToken = (frames, c) => (frames.classToken ? frames.classToken[c] : c);

// ---- 2. best path ------------------------------------------------------------------------

/**
 * The simplest way to read a draft off the frames: take each frame's likeliest class (the
 * best path), merge repeated classes, then drop the BLANKs. BLANK is what lets a draft hold
 * the same token twice (x ∅ x) and be shorter than S. The ctc:best-path drafter proposes
 * exactly this one draft.
 */
export function renderBestPath(body, view) {
  const { step, label } = view;
  if (!step.frames) return setContent(body, note(step.kind === 'draft' ? 'No frames: see panel 3 for this drafter’s candidates.' : nothingDrafted(step)));
  const frames = step.frames, best = bestPathClasses(frames), blank = frames.blankClass;
  const chip = (c) => (c === blank ? el('span', { class: 'chip blank' }, '∅') : el('span', { class: 'chip' }, label(classToken(frames, c))));
  const merged = best.filter((c, t) => t === 0 || c !== best[t - 1]);
  const draft = merged.filter((c) => c !== blank);
  const pathProb = best.reduce((p, c, t) => p * Math.exp(frames.logProbs[t * frames.classes + c]), 1);
  const draftTokens = draft.map((c) => classToken(frames, c));
  // the beam search scores a draft by all its paths; a best-path drafter's score is this one path's
  const summed = view.drafterName.includes('best-path') ? null : step.candidates.find((cand) => sameTokens(cand.tokens, draftTokens));
  setContent(
    body,
    el('div', { class: 'path-row' }, el('span', { class: 'path-label' }, 'argmax per frame'), best.map(chip)),
    el('div', { class: 'path-row' }, el('span', { class: 'path-label' }, 'merge repeats'), merged.map(chip)),
    el('div', { class: 'path-row' }, el('span', { class: 'path-label' }, 'drop blanks'), draft.length ? draft.map(chip) : el('span', { class: 'muted' }, '(empty: every frame says BLANK)')),
    el('p', { class: 'caption' },
      `This one path has p = ${percent(pathProb)}.`,
      summed && draft.length ? ` Every path that collapses to the same draft together: p = ${percent(Math.exp(summed.score))} (the beam search adds them up).` : ''),
  );
}

const sameTokens = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---- 3. beam candidates ------------------------------------------------------------------

/**
 * What the drafter proposed. For a CTC head: the prefix beam search's top drafts, each with its
 * TOTAL probability (the sum over every frame path that collapses to it), so a draft spelled
 * by many paths outranks one lucky path. Green: tokens the base model accepted; struck out:
 * tokens the tree budget left out of the tree.
 */
export function renderBeam(body, view) {
  const { step, label } = view;
  if (step.kind !== 'draft') return setContent(body, note(nothingDrafted(step)));
  if (!step.candidates.length) return setContent(body, note('The drafter proposed nothing this step: the base model emitted its own token alone.'));
  const isLookup = view.drafterName.startsWith('lookup');
  const table = el('table', { class: 'candidates' },
    el('tr', {}, el('th', {}, '#'), el('th', {}, 'draft'), el('th', {}, isLookup ? 'score' : 'p')));
  step.candidates.forEach((cand, rank) => {
    const p = Math.exp(cand.score);
    const marks = candidateMarks(cand.tokens, step);
    table.append(
      el('tr', { class: 'candidate' },
        el('td', { class: 'rank' }, String(rank + 1)),
        el('td', {}, cand.tokens.map((id, i) => el('span', { class: `chip ${marks[i]}` }, label(id)))),
        el('td', { class: 'prob' }, isLookup ? fixed(cand.score) : el('span', { class: 'bar', style: `width:${Math.max(2, 60 * p).toFixed(0)}px` }), isLookup ? '' : ` ${percent(p)}`)),
    );
  });
  setContent(body, table, el('p', { class: 'caption' }, candidatesNote(view.drafterName)));
}

/** how this drafter found its candidates, and what their number means */
function candidatesNote(drafterName) {
  if (drafterName.startsWith('lookup')) return 'Prompt lookup: continuations of earlier places where the last tokens occurred; score ≈ the length of the match.';
  if (drafterName.startsWith('medusa')) return 'Medusa: one head per position, each guessing its token alone; p multiplies their probabilities.';
  if (drafterName.includes('best-path')) return 'Best path only: the one draft of panel 2; p is that single path’s probability.';
  return 'p sums every frame path that collapses to the draft (prefix beam search).';
}

/** per token of a candidate: 'accepted', 'in-tree' or 'cut' (left out of the tree by the budget) */
function candidateMarks(tokens, step) {
  const marks = [];
  let node = 0, acceptedSoFar = true;
  for (let i = 0; i < tokens.length; i++) {
    node = node < 0 ? -1 : childWithToken(step.tree, node, tokens[i]);
    acceptedSoFar = acceptedSoFar && step.accepted[i] === tokens[i];
    marks.push(node < 0 ? 'cut' : acceptedSoFar ? 'accepted' : 'in-tree');
  }
  return marks;
}

const childWithToken = (tree, node, token) => tree.children[node].find((c) => tree.tokens[c] === token) ?? -1;

// ---- 4. token tree -----------------------------------------------------------------------

/**
 * The candidates merged into a trie under the root (the last emitted token): shared prefixes
 * are verified once, and the budget keeps the best-scored nodes. The base model scores every
 * node in ONE forward; it keeps the path plain greedy decoding would take (green) and adds its
 * own next token after it, the bonus (orange, not part of the tree).
 */
export function renderTree(body, view) {
  const { step, label } = view;
  if (!step.tree) return setContent(body, note(nothingDrafted(step)));
  const tree = step.tree, bonusId = tree.size; // the bonus drawn as one more node
  const lastAccepted = step.acceptedNodes.length ? step.acceptedNodes[step.acceptedNodes.length - 1] : 0;
  const children = tree.children.map((kids, n) => (n === lastAccepted ? [...kids, bonusId] : kids));
  children.push([]);
  const depth = [...tree.depth, tree.depth[lastAccepted] + 1];
  const { order, leaves } = layoutTree(children);

  // drawn top-down: depth goes down, leaves side by side in depth-first order
  const nodeW = 54, nodeH = 20, colW = 60, rowH = 34, pad = 3;
  const maxDepth = Math.max(...depth);
  const picture = svg('svg', { width: pad * 2 + (leaves - 1) * colW + nodeW, height: pad * 2 + maxDepth * rowH + nodeH, class: 'tree', role: 'img' });
  const at = (n) => ({ x: pad + order[n] * colW, y: pad + depth[n] * rowH });
  for (let n = 1; n <= bonusId; n++) {
    const parent = n === bonusId ? lastAccepted : tree.parent[n], a = at(parent), b = at(n);
    const [ax, ay, bx, by] = [a.x + nodeW / 2, a.y + nodeH, b.x + nodeW / 2, b.y];
    picture.append(svg('path', { class: n === bonusId ? 'edge bonus' : 'edge', d: `M${ax} ${ay} C${ax} ${ay + 8} ${bx} ${by - 8} ${bx} ${by}` }));
  }
  for (let n = 0; n <= bonusId; n++) {
    const kind = n === 0 ? 'root' : n === bonusId ? 'bonus' : step.acceptedNodes.includes(n) ? 'accepted' : 'rejected';
    const token = n === bonusId ? step.bonus : tree.tokens[n];
    const { x, y } = at(n);
    picture.append(
      svg('g', { class: `node ${kind}` },
        svg('rect', { x, y, width: nodeW, height: nodeH, rx: 5 }),
        svgText(x + nodeW / 2, y + 14, label(token), { 'text-anchor': 'middle' }, NODE_CHARS),
        svg('title', {}, `${n === bonusId ? 'bonus token' : n === 0 ? 'root (the last emitted token)' : `node ${n}, ${kind}`}: ${label(token)}`)),
    );
  }
  const verdict = el('p', { class: 'caption' },
    `${tree.size - 1} draft nodes verified in one forward; accepted ${step.acceptedNodes.length}`,
    step.accepted.length ? [': ', step.accepted.map((id) => el('span', { class: 'chip accepted' }, label(id)))] : '',
    '; bonus ', el('span', { class: 'chip bonus' }, label(step.bonus)));
  setContent(body, el('div', { class: 'scroll' }, picture), verdict);
}

/** each node's column: leaves side by side in depth-first order, a parent centred over its children */
function layoutTree(children) {
  const order = new Array(children.length);
  let leaves = 0;
  const place = (n) => {
    const kids = children[n];
    if (!kids.length) order[n] = leaves++;
    else {
      kids.forEach(place);
      order[n] = (order[kids[0]] + order[kids[kids.length - 1]]) / 2;
    }
  };
  place(0);
  return { order, leaves };
}

// ---- 5. attention mask -------------------------------------------------------------------

/**
 * Row i: what tree node i may attend to in the verifying forward: the whole cache (the text
 * so far) and its own ancestors and itself, never a sibling branch. So every node is scored
 * as if its own path were the only draft. This is treeAttentionMask (src/decode/tree.ts),
 * the cache columns drawn as one.
 */
export function renderMask(body, view) {
  const { step, label } = view;
  if (!step.tree) return setContent(body, note(nothingDrafted(step)));
  const tree = step.tree, T = tree.size;
  const mask = treeAttentionMask(tree, 0); // (T, T): the tree part; every cache column is 0 (visible)
  const labelW = 82, cacheW = 40, cell = 19, headH = 16;
  const picture = svg('svg', { width: labelW + cacheW + T * cell + 2, height: headH + T * cell + 2, class: 'mask', role: 'img' });
  picture.append(svgText(labelW + cacheW / 2, headH - 4, 'cache', { class: 'axis', 'text-anchor': 'middle' }));
  for (let j = 0; j < T; j++) picture.append(svgText(labelW + cacheW + j * cell + cell / 2, headH - 4, String(j), { class: 'axis', 'text-anchor': 'middle' }));
  for (let i = 0; i < T; i++) {
    const y = headH + i * cell;
    const rowKind = i === 0 ? 'root' : step.acceptedNodes.includes(i) ? 'accepted' : 'rejected';
    picture.append(
      svgText(labelW - 6, y + cell - 5, `${i} ${label(tree.tokens[i])}`, { class: `row-label ${rowKind}`, 'text-anchor': 'end' }, 10),
      svg('rect', { class: 'cell seen', x: labelW, y, width: cacheW - 1, height: cell - 1 }, svg('title', {}, `node ${i} sees every cached token`)),
    );
    for (let j = 0; j < T; j++) {
      const seen = mask[i * T + j] === 0;
      picture.append(svg('rect', { class: seen ? 'cell seen' : 'cell hidden', x: labelW + cacheW + j * cell, y, width: cell - 1, height: cell - 1 },
        svg('title', {}, `node ${i} ${seen ? 'sees' : 'does not see'} node ${j}`)));
    }
  }
  setContent(body, el('div', { class: 'scroll' }, picture));
}

// ---- 6. text -----------------------------------------------------------------------------

/** The prompt (grey), the text of earlier steps, then this step's accepted tokens (green) and bonus token (orange). */
export function renderText(body, view) {
  const { step, steps, index, decode, prompt } = view;
  const before = steps.slice(0, index).flatMap((s) => s.emitted);
  const accepted = step.emitted.slice(0, step.accepted.length);
  const textBefore = decode(before);
  const withAccepted = decode([...before, ...accepted]);
  const all = decode([...before, ...step.emitted]);
  setContent(body,
    el('div', { class: 'text' },
      el('span', { class: 'prompt' }, prompt),
      el('span', { class: 'earlier' }, textBefore),
      el('span', { class: 'accepted' }, tail(withAccepted, textBefore)),
      el('span', { class: 'bonus' }, tail(all, withAccepted))));
}

/** what `longer` adds to `shorter` (decoding more tokens only appends, except inside a split character) */
const tail = (longer, shorter) => (longer.startsWith(shorter) ? longer.slice(shorter.length) : longer);

// ---- 7. speed ----------------------------------------------------------------------------

/** Tokens per base-model forward, and per second of model time, up to this step, beside plain decoding's. */
export function renderStats(body, view) {
  const { step, index, plain, result } = view;
  const perStep = step.tokensSoFar / (index + 1);
  const perSecond = step.msSoFar > 0 ? (1000 * step.tokensSoFar) / step.msSoFar : 0;
  const plainLast = plain.steps[plain.steps.length - 1];
  const plainPerSecond = plainLast && plainLast.msSoFar > 0 ? (1000 * plainLast.tokensSoFar) / plainLast.msSoFar : 0;
  const same = plain.result && sameTokens(result.tokens, plain.result.tokens);
  setContent(body,
    el('table', { class: 'stats' },
      el('tr', {}, el('th', {}, ''), el('th', {}, 'tokens / step'), el('th', {}, 'tokens / s'), el('th', {}, 'this step')),
      el('tr', {}, el('td', {}, view.drafterName), el('td', { class: 'num' }, fixed(perStep)), el('td', { class: 'num' }, fixed(perSecond, 0)), el('td', { class: 'num' }, `+${step.emitted.length}`)),
      el('tr', {}, el('td', {}, 'plain'), el('td', { class: 'num' }, '1.00'), el('td', { class: 'num' }, fixed(plainPerSecond, 0)), el('td', { class: 'num' }, '+1'))),
    el('p', { class: same ? 'caption same' : 'caption differs' },
      same ? '✓ The output is plain greedy decoding’s, token for token.' : plain.result ? 'The output differs from plain decoding!' : ''));
}

// ---- 8. race -----------------------------------------------------------------------------

/**
 * Both runs on one clock: tokens emitted against model time (draft + verify of each step).
 * Each run was measured alone, one after the other, then drawn together; the cursor is this
 * step's time. Drafting wins when its steps (a bit dearer each) emit several tokens at once.
 */
export function renderRace(body, view) {
  const { step, steps, plain, drafterName } = view;
  const W = 330, H = 104, left = 28, bottom = 16, top = 6, right = 6;
  const drafted = curve(steps), plainCurve = curve(plain.steps);
  const maxMs = Math.max(drafted.at(-1).ms, plainCurve.at(-1)?.ms ?? 0, 1e-3);
  const maxTokens = Math.max(drafted.at(-1).tokens, plainCurve.at(-1)?.tokens ?? 0, 1);
  const x = (ms) => left + ((W - left - right) * ms) / maxMs, y = (n) => H - bottom - ((H - bottom - top) * n) / maxTokens;
  const line = (points, cls) => svg('polyline', { class: cls, points: points.map((p, i) => (i ? `${x(p.ms)},${y(points[i - 1].tokens)} ` : '') + `${x(p.ms)},${y(p.tokens)}`).join(' ') });
  const plainNow = tokensAt(plainCurve, step.msSoFar);
  const picture = svg('svg', { width: W, height: H, class: 'race', role: 'img' },
    svg('line', { class: 'axis-line', x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }),
    svg('line', { class: 'axis-line', x1: left, y1: top, x2: left, y2: H - bottom }),
    svgText(left - 3, top + 8, String(maxTokens), { class: 'axis', 'text-anchor': 'end' }),
    svgText(left - 3, H - bottom, '0', { class: 'axis', 'text-anchor': 'end' }),
    svgText(W - right, H - 3, `${fixed(maxMs, 0)} ms`, { class: 'axis', 'text-anchor': 'end' }),
    svgText(left, H - 3, 'model time →', { class: 'axis' }),
    plainCurve.length ? line(plainCurve, 'run plain') : null,
    line(drafted, 'run drafted'),
    svg('line', { class: 'cursor', x1: x(step.msSoFar), y1: top, x2: x(step.msSoFar), y2: H - bottom }));
  setContent(body, picture,
    el('p', { class: 'caption' },
      `At ${fixed(step.msSoFar, 0)} ms: `, el('b', { class: 'drafted' }, `${drafterName} ${step.tokensSoFar}`), ', ',
      el('b', { class: 'plain' }, `plain ${plainNow}`), ' tokens. ', breakEven(steps, plain.steps)));
}

/**
 * Why the race ends as it does: a drafting step costs more than a plain one (the drafter runs,
 * and the forward scores the whole tree), so drafting wins only when a step emits more tokens
 * than that ratio. The prefills are left out: both runs pay the same one.
 */
function breakEven(steps, plainSteps) {
  const draftSteps = steps.filter((s) => s.kind === 'draft'), plainOnes = plainSteps.slice(1);
  if (!draftSteps.length || !plainOnes.length) return '';
  const msOf = (list) => list.reduce((sum, s) => sum + s.ms, 0) / list.length;
  const draftMs = msOf(draftSteps), plainMs = msOf(plainOnes);
  const perStep = draftSteps.reduce((sum, s) => sum + s.emitted.length, 0) / draftSteps.length;
  return `On average a drafting step took ${fixed(draftMs, 1)} ms, a plain one ${fixed(plainMs, 1)} ms: drafting wins above ${fixed(draftMs / plainMs, 1)} tokens per step (here ${fixed(perStep, 1)}).`;
}

/** (model time, tokens so far) after each step, from (0, 0) */
const curve = (steps) => [{ ms: 0, tokens: 0 }, ...steps.map((s) => ({ ms: s.msSoFar, tokens: s.tokensSoFar }))];

function tokensAt(points, ms) {
  let n = 0;
  for (const p of points) if (p.ms <= ms) n = p.tokens;
  return n;
}
