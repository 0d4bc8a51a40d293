// Browser example: load the model folder over fetch, pick WebGPU (navigator.gpu) or the CPU
// backend, and stream text drafted by the model's CTC head, beside a plain run of the same
// prompt. The test harness reads window.__ctcspecResult.
import { CpuBackend, createWebGPUBackend, loadModel } from '../../dist/src/index.js';

const params = new URLSearchParams(location.search);
const modelUrl = new URL(params.get('model') ?? '/weights/base/', location.href);
const treeBudget = params.get('treeBudget') === null ? 'auto' : Number(params.get('treeBudget'));
const drafter = params.get('drafter') ?? 'auto'; // 'auto': the model's CTC head, or plain decoding where drafting does not pay
const status = document.getElementById('status');
const output = document.getElementById('output');
const speed = document.getElementById('speed');

async function pickBackend() {
  if (params.get('backend') === 'cpu' || !navigator.gpu) return new CpuBackend();
  try {
    return await createWebGPUBackend(navigator.gpu, { fallback: params.get('fallback') === '1' });
  } catch (e) {
    console.warn(`WebGPU unavailable (${e.message}); using the CPU backend`);
    return new CpuBackend();
  }
}

const describe = (name, stats) => `${name}: ${stats.tokensPerStep.toFixed(2)} tokens/step, ${stats.tokensPerSecond.toFixed(0)} tokens/s`;

async function run() {
  const lm = await loadModel(modelUrl, { backend: await pickBackend() });
  status.textContent = `model loaded (${lm.config.num_hidden_layers} layers), backend: ${lm.backend.name}`;
  const go = async () => {
    const prompt = document.getElementById('prompt').value;
    const maxNewTokens = 32;
    output.textContent = '';
    let result;
    // drafter 'auto' (the default): the model's CTC head
    for await (const event of lm.stream(prompt, { maxNewTokens, treeBudget, drafter })) {
      if (event.type === 'text') output.textContent += event.text;
      if (event.type === 'done') result = event.result;
    }
    const plain = await lm.generate(prompt, { drafter: 'none', maxNewTokens });
    speed.textContent = `${describe(result.drafter.name, result.stats)} | ${describe('plain', plain.stats)}`;
    status.textContent = `backend: ${lm.backend.name}, drafter: ${result.drafter.name} (${result.drafter.reason})`;
    return {
      runtime: 'browser', backend: result.backend, drafter: result.drafter.name, tokens: result.tokens, plainTokens: plain.tokens, text: result.text,
      tokensPerStep: result.stats.tokensPerStep, tokensPerSecond: result.stats.tokensPerSecond, plainTokensPerSecond: plain.stats.tokensPerSecond,
    };
  };
  document.getElementById('go').onclick = go;
  window.__ctcspecResult = await go();
}

run().catch((e) => {
  status.textContent = `error: ${e.message}`;
  window.__ctcspecResult = { error: e.message };
});
