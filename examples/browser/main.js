// Browser example: fetch the model files, pick WebGPU (navigator.gpu) or the CPU backend,
// and stream generated text into the page. The test harness reads window.__ctcspecResult.
import { CpuBackend, Llama, generate, createWebGPUBackend, fetchModelFiles, parseModelFiles, StreamDecoder } from '../../dist/src/index.js';

const params = new URLSearchParams(location.search);
const modelUrl = new URL(params.get('model') ?? '/weights/base/', location.href);
const status = document.getElementById('status');
const output = document.getElementById('output');

async function pickBackend() {
  if (params.get('backend') === 'cpu' || !navigator.gpu) return new CpuBackend();
  try {
    return await createWebGPUBackend(navigator.gpu, { fallback: params.get('fallback') === '1' });
  } catch (e) {
    console.warn(`WebGPU unavailable (${e.message}); using the CPU backend`);
    return new CpuBackend();
  }
}

async function run() {
  const { config, tensors, tokenizer } = parseModelFiles(await fetchModelFiles(modelUrl), modelUrl.href);
  const backend = await pickBackend();
  const model = new Llama(backend, config, tensors);
  status.textContent = `model loaded (${config.num_hidden_layers} layers), backend: ${backend.name}`;
  const go = async () => {
    output.textContent = '';
    const stream = new StreamDecoder(tokenizer);
    const prompt = tokenizer.encode(document.getElementById('prompt').value, { bos: true });
    const result = await generate(model, prompt, { maxNewTokens: 24, onToken: (id) => (output.textContent += stream.push(id)) });
    output.textContent += stream.flush();
    status.textContent = `backend: ${backend.name}, ${result.stats.newTokens} tokens, ${result.stats.tokensPerSecond.toFixed(1)} tokens/s`;
    return { runtime: 'browser', backend: backend.name, tokens: result.tokens, text: tokenizer.decode(result.tokens) };
  };
  document.getElementById('go').onclick = go;
  window.__ctcspecResult = await go();
}

run().catch((e) => {
  status.textContent = `error: ${e.message}`;
  window.__ctcspecResult = { error: e.message };
});
