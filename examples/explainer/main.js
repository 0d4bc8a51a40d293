// The CTC drafting explainer: runs the shipped model with its CTC draft head in this page and
// shows every step of speculative decoding, one base-model forward at a time.
//
// How it works: the page generates the prompt's continuation twice through the library API
// (TextModel.stream), once with the chosen drafter and once plainly (drafter 'none'), and
// records every step event (candidates, tree, accepted tokens, bonus token, timings). For a
// CTC head it also records the head's frames: CtcHeadDrafter.onFrames hands over a copy of
// each proposal's frames, one per drafting step, in step order. Then the recorded steps are
// shown one at a time (panels.js draws each panel from one step alone), with back / forward
// buttons, a slider and autoplay.
//
// Query parameters (all optional): prompt, drafter, treeBudget (a number or auto),
// maxNewTokens, backend (auto: WebGPU, else WebGL through gpu.js, else the CPU; or webgpu,
// webgl, cpu), fallback=1 (WebGPU's software adapter),
// model (the model folder's URL), autoplay=0, step (the step shown first: a number or best).
// Tests read window.__explainer.
import { loadModel, pickBrowserBackend } from '../../dist/src/index.js';
import * as panels from './panels.js';

const DRAFTERS = ['ctc', 'ctc:best-path', 'medusa', 'lookup'];
const DEFAULTS = { prompt: 'The jury said', drafter: 'ctc', treeBudget: '8', maxNewTokens: '40' };
const MAX_NEW_TOKENS = 200; // the page keeps every step's frames: a bound on what it holds
const MAX_TREE_BUDGET = 64;
/** tokens generated once after loading, with each drafter used, so the first measured run is not also the first run (JIT, shader compilation) */
const WARMUP_TOKENS = 4;
const AUTOPLAY_MS = 1400;

/** panel id in index.html -> the function that draws it */
const PANELS = {
  frames: panels.renderFrames,
  'best-path': panels.renderBestPath,
  beam: panels.renderBeam,
  tree: panels.renderTree,
  mask: panels.renderMask,
  text: panels.renderText,
  stats: panels.renderStats,
  race: panels.renderRace,
};

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const ui = {
  form: $('controls'), prompt: $('prompt'), drafter: $('drafter'), budget: $('budget'), maxTokens: $('max-tokens'), run: $('run'),
  status: $('status'), backend: $('backend'), stepLabel: $('step-label'), slider: $('slider'),
  first: $('first'), back: $('back'), play: $('play'), forward: $('forward'), last: $('last'),
};

/** what the page shows: the model, the recorded runs, the step on screen, the autoplay timer */
const state = { lm: null, recording: null, index: 0, timer: null, warmed: new Set() };
window.__explainer = { ready: false };

main().catch(fail);

async function main() {
  fillControls();
  const { backend, why } = await pickBackend();
  ui.backend.textContent = `${backend.name} (${why})`;
  ui.status.textContent = 'loading the model…';
  const modelUrl = new URL(params.get('model') ?? '../../weights/base/', location.href);
  state.lm = await loadModel(modelUrl, { backend });
  wireControls();
  await runAndShow();
}

/** WebGPU, else WebGL (gpu.js), else the CPU, or what the URL's backend= names; and why */
function pickBackend() {
  return pickBrowserBackend({ prefer: params.get('backend') ?? 'auto', gpu: navigator.gpu, GPU: window.GPU, fallback: params.get('fallback') === '1' });
}

// ---- controls ----------------------------------------------------------------------------

function fillControls() {
  for (const name of DRAFTERS) ui.drafter.append(new Option(name, name));
  ui.prompt.value = params.get('prompt') ?? DEFAULTS.prompt;
  ui.drafter.value = DRAFTERS.includes(params.get('drafter')) ? params.get('drafter') : DEFAULTS.drafter;
  ui.budget.value = params.get('treeBudget') ?? DEFAULTS.treeBudget;
  ui.maxTokens.value = params.get('maxNewTokens') ?? DEFAULTS.maxNewTokens;
}

/** the form's values, checked: a bad one is an error that names it */
function readOptions() {
  const budgetText = ui.budget.value.trim();
  const treeBudget = budgetText === 'auto' ? 'auto' : Number(budgetText);
  if (treeBudget !== 'auto' && !(/^\d+$/.test(budgetText) && treeBudget <= MAX_TREE_BUDGET)) {
    throw new Error(`tree budget must be auto or a whole number from 0 to ${MAX_TREE_BUDGET}, got "${budgetText}"`);
  }
  const maxNewTokens = Number(ui.maxTokens.value);
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1 && maxNewTokens <= MAX_NEW_TOKENS)) {
    throw new Error(`new tokens must be a whole number from 1 to ${MAX_NEW_TOKENS}, got "${ui.maxTokens.value}"`);
  }
  if (!ui.prompt.value) throw new Error('the prompt is empty');
  return { prompt: ui.prompt.value, drafter: ui.drafter.value, treeBudget, maxNewTokens };
}

function wireControls() {
  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    runAndShow().catch(fail);
  });
  ui.first.onclick = () => show(0);
  ui.back.onclick = () => show(state.index - 1);
  ui.forward.onclick = () => show(state.index + 1);
  ui.last.onclick = () => show(Infinity);
  ui.play.onclick = () => (state.timer ? stopAutoplay() : startAutoplay());
  ui.slider.oninput = () => show(Number(ui.slider.value));
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement && e.target !== ui.slider) return;
    if (e.key === 'ArrowLeft') show(state.index - 1);
    if (e.key === 'ArrowRight') show(state.index + 1);
  });
}

// ---- running ------------------------------------------------------------------------------

/** generate with the chosen drafter and plainly, record both, then show the steps */
async function runAndShow() {
  stopAutoplay();
  const options = readOptions();
  window.__explainer = { ready: false };
  ui.status.classList.remove('error');
  ui.run.disabled = true;
  try {
    const lm = state.lm;
    await warmUp(lm, options);
    ui.status.textContent = `generating with ${options.drafter}…`;
    const drafted = await recordRun(lm, options.prompt, { drafter: options.drafter, treeBudget: options.treeBudget, maxNewTokens: options.maxNewTokens });
    ui.status.textContent = 'generating plainly (drafter none), for the race…';
    const plain = await recordRun(lm, options.prompt, { drafter: 'none', maxNewTokens: options.maxNewTokens });
    state.recording = { options, drafted, plain };
    rememberInUrl(options);
    const { result } = drafted;
    ui.status.textContent = `${result.drafter.name}: ${result.stats.newTokens} tokens in ${result.stats.steps} forwards (${result.stats.tokensPerStep.toFixed(2)} tokens/step); ` +
      `plain: ${plain.result.stats.steps} forwards`;
    show(initialStep(drafted.steps));
    window.__explainer = {
      ready: true, backend: lm.backend.name, drafter: result.drafter.name, tokens: result.tokens, plainTokens: plain.result.tokens,
      text: result.text, kinds: drafted.steps.map((s) => s.kind), acceptedPerStep: drafted.steps.map((s) => s.accepted.length),
      get index() { return state.index; }, show,
    };
    if (params.get('autoplay') !== '0') startAutoplay();
  } finally {
    ui.run.disabled = false;
  }
}

/** a few tokens with this drafter and plainly, once per drafter: the measured runs then start warm */
async function warmUp(lm, options) {
  if (state.warmed.has(options.drafter)) return;
  ui.status.textContent = 'warming up…';
  await lm.generate(options.prompt, { drafter: options.drafter, treeBudget: options.treeBudget, maxNewTokens: WARMUP_TOKENS });
  await lm.generate(options.prompt, { drafter: 'none', maxNewTokens: WARMUP_TOKENS });
  state.warmed.add(options.drafter);
}

/**
 * One generation through lm.stream, every step recorded with its running totals. A CTC
 * head's frames arrive through its onFrames hook, once per proposal; every drafting step
 * made exactly one proposal, so the n-th frames belong to the n-th drafting step.
 */
async function recordRun(lm, prompt, options) {
  const drafter = options.drafter === 'none' ? null : await lm.drafter(options.drafter); // the instance stream() uses for this name
  const hasFrames = drafter !== null && 'onFrames' in drafter;
  const framesQueue = [];
  if (hasFrames) drafter.onFrames = (frames) => framesQueue.push(frames);
  const steps = [];
  let result, msSoFar = 0, tokensSoFar = 0;
  try {
    for await (const event of lm.stream(prompt, options)) {
      if (event.type === 'step') {
        const ms = event.draftMs + event.verifyMs;
        msSoFar += ms;
        tokensSoFar += event.emitted.length;
        const frames = hasFrames && event.kind === 'draft' ? framesQueue.shift() ?? null : null;
        steps.push(recordStep(event, frames, { ms, msSoFar, tokensSoFar }));
      } else if (event.type === 'done') result = event.result;
    }
  } finally {
    if (hasFrames) drafter.onFrames = null;
  }
  return { steps, result };
}

/** what the panels need of one step event, copied, with its model time and the running totals */
function recordStep(event, frames, { ms, msSoFar, tokensSoFar }) {
  return {
    kind: event.kind,
    candidates: event.candidates.map((c) => ({ tokens: [...c.tokens], score: c.score })),
    tree: event.tree,
    accepted: [...event.accepted],
    acceptedNodes: event.tree ? acceptedNodeIds(event.tree, event.accepted) : [],
    bonus: event.bonus,
    emitted: [...event.emitted],
    frames,
    ms,
    msSoFar,
    tokensSoFar,
  };
}

/** the tree nodes of the accepted path: from the root, the child holding each accepted token */
function acceptedNodeIds(tree, accepted) {
  const nodes = [];
  let node = 0;
  for (const token of accepted) {
    node = tree.children[node].find((c) => tree.tokens[c] === token);
    nodes.push(node);
  }
  return nodes;
}

/** the step shown first: ?step=N, ?step=best (the most tokens accepted), else the first */
function initialStep(steps) {
  const asked = params.get('step');
  if (asked === 'best') return steps.reduce((best, s, i) => (s.accepted.length > steps[best].accepted.length ? i : best), 0);
  return asked !== null && /^\d+$/.test(asked) ? Number(asked) : 0;
}

function rememberInUrl(options) {
  const url = new URL(location.href);
  url.searchParams.set('prompt', options.prompt);
  url.searchParams.set('drafter', options.drafter);
  url.searchParams.set('treeBudget', String(options.treeBudget));
  url.searchParams.set('maxNewTokens', String(options.maxNewTokens));
  history.replaceState(null, '', url);
}

// ---- showing one step ---------------------------------------------------------------------

/** draw every panel for step `index` (clamped to the recorded steps) */
function show(index) {
  const { drafted, plain, options } = state.recording;
  const steps = drafted.steps;
  state.index = Math.max(0, Math.min(steps.length - 1, index));
  const step = steps[state.index];
  const view = {
    step, steps, index: state.index, prompt: options.prompt, drafterName: options.drafter,
    label: tokenLabel, decode, plain, result: drafted.result,
  };
  for (const [id, draw] of Object.entries(PANELS)) draw($(`panel-${id}`).querySelector('.body'), view);
  ui.slider.max = String(steps.length - 1);
  ui.slider.value = String(state.index);
  ui.stepLabel.textContent = `step ${state.index} of ${steps.length - 1} · ${step.kind}`;
  ui.first.disabled = ui.back.disabled = state.index === 0;
  ui.forward.disabled = ui.last.disabled = state.index === steps.length - 1;
}

function startAutoplay() {
  if (!state.recording) return;
  if (state.index === state.recording.drafted.steps.length - 1) show(0);
  ui.play.textContent = '❚❚ pause';
  state.timer = setInterval(() => {
    if (state.index >= state.recording.drafted.steps.length - 1) stopAutoplay();
    else show(state.index + 1);
  }, AUTOPLAY_MS);
}

function stopAutoplay() {
  clearInterval(state.timer);
  state.timer = null;
  ui.play.textContent = '▶ play';
}

// ---- tokens as text -----------------------------------------------------------------------

/** a token as a short visible label: spaces as ·, control tokens named */
function tokenLabel(id) {
  const tokenizer = state.lm.tokenizer;
  if (id === tokenizer.eosId) return '⟨eos⟩';
  if (id === tokenizer.bosId) return '⟨bos⟩';
  if (id >= tokenizer.vocabSize) return '\uFFFD'; // a padded vocabulary's unused ids
  const text = tokenizer.decode([id]);
  return text ? text.replace(/ /g, '·').replace(/\n/g, '⏎').replace(/\t/g, '⇥') : `⟨${id}⟩`;
}

/** token ids as running text */
function decode(ids) {
  const tokenizer = state.lm.tokenizer;
  return tokenizer.decode(ids.filter((id) => id < tokenizer.vocabSize));
}

function fail(e) {
  console.error(e);
  ui.status.textContent = `error: ${e.message}`;
  ui.status.classList.add('error');
  window.__explainer = { ready: false, error: e.message };
}
