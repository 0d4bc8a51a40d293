// One backend of the browser bench (bench/browser-backends.ts) in this page: the model loaded
// on it, then per prompt a prefill, a plain greedy run and a CTC-drafted greedy run (in
// alternating order), timed by the library's own generation stats.
import { loadModel, pickBrowserBackend } from '/dist/src/index.js';

async function run({ backend: prefer, model, prompts, maxNewTokens, treeBudget, headBackend }) {
  const { backend, why } = await pickBrowserBackend({ prefer, gpu: navigator.gpu, GPU: window.GPU, fallback: true });
  const lm = await loadModel(new URL(model, location.href), { backend });
  const greedy = { maxNewTokens, eosId: null };
  const rows = [];
  for (let i = 0; i < prompts.length; i++) {
    const prompt = prompts[i];
    const plainRun = () => lm.generate(prompt, { ...greedy, drafter: 'none' });
    const ctcRun = () => lm.generate(prompt, { ...greedy, drafter: 'ctc', treeBudget, headBackend });
    let plain, ctc;
    if (i % 2 === 0) {
      plain = await plainRun();
      ctc = await ctcRun();
    } else {
      ctc = await ctcRun();
      plain = await plainRun();
    }
    rows.push({
      promptTokens: prompt.length,
      prefillMs: plain.stats.prefillMs,
      decodeTokens: plain.stats.newTokens - 1, // the first new token comes from the prefill
      decodeMs: plain.stats.wallMs - plain.stats.prefillMs,
      plainTokensPerSecond: plain.stats.tokensPerSecond,
      ctcTokensPerSecond: ctc.stats.tokensPerSecond,
      ctcTokensPerStep: ctc.stats.tokensPerStep,
      sameTokens: JSON.stringify(plain.tokens) === JSON.stringify(ctc.tokens),
      plainTokens: plain.tokens,
    });
  }
  return { backend: backend.name, description: backend.description ?? backend.name, why, rows };
}

window.__bench = { ready: true, run };
