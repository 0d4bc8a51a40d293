// Browser example: load the model folder over fetch, pick a backend (WebGPU, else WebGL
// through gpu.js, else the CPU; ?backend=webgpu|webgl|cpu overrides), and stream text
// drafted by the model's CTC head, beside a plain run of the same prompt.
// The test harness reads window.__ctcspecResult.
import { loadModel, pickBrowserBackend } from '../../dist/src/index.js';

const params = new URLSearchParams(location.search);
const modelUrl = new URL(params.get('model') ?? '/weights/base/', location.href);
const treeBudget = params.get('treeBudget') === null ? 'auto' : Number(params.get('treeBudget'));
const drafter = params.get('drafter') ?? 'auto'; // 'auto': the model's CTC head, or plain decoding where drafting does not pay
const status = document.getElementById('status');
const output = document.getElementById('output');
const speed = document.getElementById('speed');

function pickBackend() {
  return pickBrowserBackend({ prefer: params.get('backend') ?? 'auto', gpu: navigator.gpu, GPU: window.GPU, fallback: params.get('fallback') === '1' });
}

const describe = (name, stats) => `${name}: ${stats.tokensPerStep.toFixed(2)} tokens/step, ${stats.tokensPerSecond.toFixed(0)} tokens/s`;

async function run() {
  const { backend, why } = await pickBackend();
  const lm = await loadModel(modelUrl, { backend });
  const running = `backend: ${backend.name}${backend.description ? ` on ${backend.description}` : ''}, ${why}`;
  status.textContent = `model loaded (${lm.config.num_hidden_layers} layers), ${running}`;
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
    status.textContent = `${running}; drafter: ${result.drafter.name} (${result.drafter.reason})`;
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
