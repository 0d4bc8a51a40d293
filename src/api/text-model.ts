/**
 * The library API: load a model, generate text, with speculative decoding by default.
 *
 *   const lm = await loadModel(urlSource('https://example.org/weights/base/'));   // or ctcspec/node's loadModel(dir)
 *   const out = await lm.generate('The jury said', { maxNewTokens: 64 });
 *   out.text; out.stats.tokensPerStep; out.drafter        // 'ctc' ... and why
 *   for await (const e of lm.stream('The jury said')) if (e.type === 'text') write(e.text);
 *   const reply = await lm.chat([{ role: 'user', content: 'Hello' }]);   // an instruction-tuned model, in its chat template
 *
 * `drafter: 'auto'` (the default) is the library's policy (policy.ts: the model's CTC head
 * when it has one), 'none' plain decoding, 'lookup' prompt lookup, a head's name in drafters/,
 * or any object implementing Drafter. Whatever drafts, greedy output is plain greedy
 * decoding's, token for token, and sampled output has the base model's distribution.
 *
 * One TextModel serves concurrent calls: they queue and run one at a time in call order, each
 * returning exactly what it returns alone. Drafters and tree budgets are made once per name and
 * kept, so what the budget learned about this backend carries over from call to call.
 */
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { Llama } from '../model/llama.js';
import { checkTokenizerFits, parseModelFiles, type ParsedModel } from '../model/load.js';
import { defaultStopIds, type LlamaConfig } from '../model/config.js';
import { backendSink, checkFits, defaultMaxSeq, type LlamaOptions } from '../model/llama.js';
import type { WeightFormat } from '../tensor/weight-format.js';
import { frozenBase, type FrozenBase } from '../draft/head-io.js';
import { locate, readCheckpoint, readModelConfig } from '../io/checkpoint.js';
import { FormatError } from '../io/errors.js';
import { readGguf, readGgufLayout } from '../io/gguf.js';
import type { TensorMap } from '../tensor/dtype.js';
import { StreamDecoder, decodeAfter, readHfTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { generate, type StepEvent } from '../decode/generate.js';
import { generateSpeculative, type SpeculativeResult } from '../decode/speculative.js';
import type { BudgetPolicy } from '../decode/cost-model.js';
import type { Drafter } from '../draft/drafter.js';
import { loadDrafter } from './drafters.js';
import { chooseDrafter, makeBudget } from './policy.js';
import { readText, urlSource, type FileSource } from './source.js';
import { ChatTemplateError, ggufChatTemplate, readChatTemplate, renderChat, type ChatMessage, type ChatTemplate } from './chat.js';

export interface TextOptions {
  /** new tokens at most (default: generation_config.json's max_new_tokens, else 64) */
  maxNewTokens?: number;
  /** 0 = greedy (default; generation_config.json's temperature when it says do_sample) */
  temperature?: number;
  /** nucleus sampling (default 1; generation_config.json's top_p when it says do_sample) */
  topP?: number;
  seed?: number;
  /** 'auto' (default), 'none', 'lookup', a head's name (with :variants), or a Drafter */
  drafter?: string | Drafter;
  /** most draft nodes verified per step, or 'auto' (default): the size that pays, down to 0 */
  treeBudget?: number | 'auto';
  /** longest draft per step (default 6) */
  maxDraftLen?: number;
  /** CTC heads: candidates kept from the prefix beam search (default 4) */
  beam?: number;
  /**
   * where a trained head runs: 'cpu' (default: a CPU backend of its own; a head is small, and
   * its proposals are searched on the host anyway) or 'model' (the base model's backend: on a
   * GPU its matrix products run there, for the price of uploading the hidden states it catches
   * up on and one readback of its frames per proposal)
   */
  headBackend?: 'cpu' | 'model';
  /**
   * stop token, or tokens (default: the model's eos_token_id, from generation_config.json
   * when it has one, else config.json; else the tokenizer's EOS); null: never stop early
   */
  eosId?: number | readonly number[] | null;
  /** abort between steps: the call rejects with the signal's reason, the model stays usable */
  signal?: AbortSignal;
}

export interface TextResult extends Omit<SpeculativeResult, 'stats'> {
  text: string;
  stats: SpeculativeResult['stats'];
  /** the drafter that ran, and why it was chosen */
  drafter: { name: string; reason: string };
  backend: string;
}

/** What stream() yields: per step, the step's event then the text it completed; then the result. */
export type StreamEvent = ({ type: 'step' } & StepEvent) | { type: 'text'; text: string } | { type: 'done'; result: TextResult };

const DEFAULT_MAX_NEW_TOKENS = 64;
/** generation_config.json's temperature when it says do_sample and names none (Hugging Face's default) */
const HF_DEFAULT_TEMPERATURE = 1;

export interface LoadOptions {
  /** the backend to run on (default: a new CpuBackend) */
  backend?: Backend;
  /** a GGUF file of the FileSource to load instead of the folder's config.json and safetensors (a URL ending in .gguf needs none) */
  gguf?: string;
  /**
   * the weight matrices' format in memory: 'f32', 'f16', 'bf16' or 'q8_0' (quantized on
   * load); default as stored (a 16-bit file stays 16-bit). A backend that does not hold the
   * format (Backend.weightFormats: WebGPU) holds f32.
   */
  weights?: WeightFormat;
}

export class TextModel {
  readonly model: Llama;
  private readonly drafters = new Map<string, { drafter: Drafter; budgets: Map<string, { maxNodes: number; policy: BudgetPolicy }> }>();
  /** the chat template, read from the folder when chat is first asked for */
  private chatTemplate: Promise<ChatTemplate> | undefined;

  constructor(
    readonly config: LlamaConfig,
    /** the host tensors given (with releaseHostWeights, as loadModel passes, emptied as the backend takes them) */
    readonly tensors: TensorMap,
    readonly tokenizer: Tokenizer,
    backend: Backend,
    /** the model's folder, where its draft heads are (none: no heads) */
    readonly source?: FileSource,
    /**
     * the weights' format, and whether `tensors` may be emptied as the backend takes them
     * (LlamaOptions); and a chat template that comes with the model itself (a GGUF file's),
     * used before the folder's
     */
    modelOptions: Pick<LlamaOptions, 'weights' | 'releaseHostWeights'> & { chatTemplate?: ChatTemplate } = {},
  ) {
    this.model = new Llama(backend, config, tensors, modelOptions);
    if (modelOptions.chatTemplate) this.chatTemplate = Promise.resolve(modelOptions.chatTemplate);
  }

  /** The embedding and LM head a draft head reads: the host's tensors, or the backend's when those were released. */
  async frozenBase(): Promise<FrozenBase> {
    if (this.tensors.has('model.embed_tokens.weight')) return frozenBase(this.config, this.tensors);
    const embed = await this.model.readWeight('embed');
    return { embed, lmHead: this.config.tie_word_embeddings ? embed : await this.model.readWeight('lmHead') };
  }

  get backend(): Backend {
    return this.model.backend;
  }

  /** Generate a continuation of `prompt` (text, encoded with BOS; or token ids as they are). */
  async generate(prompt: string | readonly number[], opts: TextOptions = {}): Promise<TextResult> {
    return this.run(prompt, opts, undefined);
  }

  /**
   * The same generation as an async iterator: a 'step' event per base-model step (what was
   * drafted, accepted, the bonus token, timings), a 'text' event with the text each step
   * completed (a character is never split across events), and a final 'done' with the result.
   * Leaving the loop early (break, return, an exception) aborts the generation.
   */
  async *stream(prompt: string | readonly number[], opts: TextOptions = {}): AsyncGenerator<StreamEvent, void, undefined> {
    const ids = this.promptIds(prompt);
    const pending: StreamEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (e: StreamEvent) => {
      pending.push(e);
      wake?.();
    };
    const stop = new AbortController();
    const onAbort = () => stop.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    const decoder = new StreamDecoder(this.tokenizer, ids); // the first piece reads as it does after the prompt
    let settled = false, failed = false, failure: unknown;
    const running = this.run(ids, { ...opts, signal: stop.signal }, (e) => {
      push({ type: 'step', ...e });
      // an id past the tokenizer's vocabulary (a padded or random-init model) shows as U+FFFD
      const text = e.emitted.map((id) => (id < this.tokenizer.vocabSize ? decoder.push(id) : '\uFFFD')).join('');
      if (text) push({ type: 'text', text });
    }).then(
      (result) => {
        settled = true;
        const rest = decoder.flush();
        if (rest) pending.push({ type: 'text', text: rest });
        push({ type: 'done', result });
      },
      (e: unknown) => {
        settled = true;
        failed = true;
        failure = e;
        wake?.();
      },
    );
    try {
      for (;;) {
        while (pending.length) yield pending.shift()!;
        if (failed) throw failure;
        if (settled && !pending.length) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      if (!settled) stop.abort(new DOMException('the stream was closed before it ended', 'AbortError'));
      await running;
    }
  }

  /**
   * Generate the assistant's reply to a conversation: `messages` rendered with the model's
   * chat template (chat.ts: chat_template.jinja or tokenizer_config.json's chat_template;
   * a ChatTemplateError when the model has none), then generate() on those ids. Unless
   * `opts.eosId` says otherwise, any of the model's end tokens ends the reply (chatStopIds).
   */
  async chat(messages: readonly ChatMessage[], opts: TextOptions = {}): Promise<TextResult> {
    return this.generate(await this.chatPrompt(messages), { ...opts, eosId: opts.eosId === undefined ? this.chatStopIds() : opts.eosId });
  }

  /** chat() as stream() gives it: the reply's steps and text as they come, then the result. */
  async *chatStream(messages: readonly ChatMessage[], opts: TextOptions = {}): AsyncGenerator<StreamEvent, void, undefined> {
    yield* this.stream(await this.chatPrompt(messages), { ...opts, eosId: opts.eosId === undefined ? this.chatStopIds() : opts.eosId });
  }

  /**
   * The prompt ids of a conversation, ending with the opening of the assistant's turn. The
   * template writes the special tokens as text (BOS among them, in most templates), which the
   * tokenizer reads back as those tokens; BOS is put first only when the tokenizer starts
   * sequences with one and the template did not write it, so a prompt never starts with two.
   */
  async chatPrompt(messages: readonly ChatMessage[]): Promise<number[]> {
    if (!this.source && !this.chatTemplate) throw new ChatTemplateError('this model was given without its folder or a template of its own, so it has no chat template to read: load it from a model folder');
    this.chatTemplate ??= readChatTemplate(this.source!);
    const template = await this.chatTemplate.catch((e: unknown) => {
      this.chatTemplate = undefined; // a folder fixed later is read again
      throw e;
    });
    const text = renderChat(template.text, messages, { bos_token: template.bosToken ?? '', eos_token: template.eosToken ?? '', add_generation_prompt: true }, template.source);
    const ids = this.tokenizer.encode(text, { bos: true });
    const bos = this.tokenizer.bosId;
    return bos !== undefined && ids[0] === bos && ids[1] === bos ? ids.slice(1) : ids;
  }

  /**
   * Every token that ends a reply: generation_config.json's and config.json's eos_token_id
   * (instruction-tuned models often name several: end of text, end of turn) and the
   * tokenizer's EOS tokens (tokenizer_config.json's eos_token, often the end of a turn).
   */
  chatStopIds(): number[] {
    const ids = (v: number | readonly number[] | undefined | null): readonly number[] => (v === undefined || v === null ? [] : typeof v === 'number' ? [v] : v);
    return [...new Set([...ids(this.config.generation_config?.eos_token_id), ...ids(this.config.eos_token_id), ...this.tokenizer.eosIds])];
  }

  /** The drafter a name resolves to on this model (made once per name and options, then reused). */
  async drafter(name: string, opts: Pick<TextOptions, 'beam' | 'headBackend'> = {}): Promise<Drafter> {
    return (await this.drafterEntry(name, opts)).drafter;
  }

  private async drafterEntry(name: string, opts: Pick<TextOptions, 'beam' | 'headBackend'>) {
    const key = `${name} beam=${opts.beam ?? ''} on=${opts.headBackend ?? 'cpu'}`;
    let entry = this.drafters.get(key);
    if (!entry) {
      const factory = await loadDrafter(name, this.source, this, { beam: opts.beam });
      if (opts.headBackend !== undefined && opts.headBackend !== 'cpu' && opts.headBackend !== 'model') {
        throw new RangeError(`headBackend must be 'cpu' or 'model', got ${JSON.stringify(opts.headBackend)}`);
      }
      entry = { drafter: factory.make(opts.headBackend === 'model' ? this.backend : undefined), budgets: new Map() };
      this.drafters.set(key, entry);
    }
    return entry;
  }

  private promptIds(prompt: string | readonly number[]): readonly number[] {
    return typeof prompt === 'string' ? this.tokenizer.encode(prompt, { bos: true }) : prompt;
  }

  private async run(prompt: string | readonly number[], opts: TextOptions, onStep: ((e: StepEvent) => void) | undefined): Promise<TextResult> {
    const ids = this.promptIds(prompt);
    const choice =
      opts.drafter === undefined || opts.drafter === 'auto'
        ? await chooseDrafter(this.backend, this.source)
        : typeof opts.drafter === 'string'
          ? { name: opts.drafter, reason: 'asked for' }
          : { name: opts.drafter.name, reason: 'given' };
    const gen = this.config.generation_config, sampling = gen?.do_sample === true; // the model authors' defaults
    const base = {
      maxNewTokens: opts.maxNewTokens ?? gen?.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS,
      temperature: opts.temperature ?? (sampling ? gen?.temperature ?? HF_DEFAULT_TEMPERATURE : undefined),
      topP: opts.topP ?? (sampling ? gen?.top_p : undefined),
      seed: opts.seed,
      eosId: opts.eosId === undefined ? defaultStopIds(this.config) ?? this.tokenizer.eosId : opts.eosId,
      signal: opts.signal,
      onStep,
    };
    let result: SpeculativeResult;
    if (choice.name === 'none') {
      // plain decoding is the plain loop: the baseline pays nothing for the speculative machinery
      const r = await generate(this.model, ids, base);
      result = { ...r, stats: { ...r.stats, draftMs: 0, verifyMs: r.stats.wallMs - r.stats.prefillMs, acceptedPerStep: [Math.max(0, r.stats.steps - 1)], draftSteps: 0 } };
    } else {
      let drafter: Drafter, budgets: Map<string, { maxNodes: number; policy: BudgetPolicy }>;
      if (typeof opts.drafter === 'object') {
        drafter = opts.drafter;
        budgets = new Map();
      } else {
        ({ drafter, budgets } = await this.drafterEntry(choice.name, opts));
      }
      const treeBudget = opts.treeBudget ?? 'auto';
      const key = String(treeBudget);
      let budget = budgets.get(key);
      if (!budget) budgets.set(key, (budget = makeBudget(treeBudget, this.model)));
      result = await generateSpeculative(this.model, ids, drafter, { ...base, treeBudget: budget.maxNodes, maxDraftLen: opts.maxDraftLen, budget: budget.policy });
    }
    const known = result.tokens.filter((id) => id < this.tokenizer.vocabSize);
    if (choice.name !== 'none' && result.stats.steps > 1 && result.stats.draftSteps === 0) {
      choice.reason += `; no step drafted: the tree budget measured that drafting does not pay on this backend (${this.backend.name}), so every step was a plain step`;
    }
    return { ...result, text: decodeAfter(this.tokenizer, ids, known), drafter: choice, backend: this.backend.name };
  }
}

/**
 * Load a model folder: config.json, model.safetensors, tokenizer.json (with
 * tokenizer_config.json when there is one), and the draft heads beside them (read when a
 * drafter is first asked for). `source` is a FileSource or the folder's URL.
 */
export async function loadModel(source: FileSource | string | URL, opts: LoadOptions = {}): Promise<TextModel> {
  const backend = opts.backend ?? new CpuBackend();
  const url = typeof source === 'string' || source instanceof URL ? new URL(source) : undefined;
  if (url?.pathname.endsWith('.gguf')) return loadGgufModel(urlSource(new URL('.', url)), url.pathname.split('/').pop()!, backend, opts.weights);
  if (opts.gguf !== undefined && !url) return loadGgufModel(source as FileSource, opts.gguf, backend, opts.weights);
  const files = url ? urlSource(url) : (source as FileSource);
  // config.json (+ generation_config.json), then whether the backend can hold the model, before any weight is read
  const config = await readModelConfig(files);
  // a 16-bit file stays 16-bit where the backend holds 16-bit weights (checked against the narrowest the file may be; the model checks again)
  const sixteen = opts.weights !== 'f32' && backend.weightFormats?.includes('bf16') === true && backend.weightFormats.includes('f16');
  checkFits(backend, config, defaultMaxSeq(config), undefined, opts.weights ?? (sixteen ? 'bf16' : 'f32'));
  // model.safetensors or its shards, in ranges where the source can: 16-bit matrices straight into the backend where it can take them
  const { tensors } = await readCheckpoint(files, { keepSixteenBit: sixteen, sixteenBitSink: sixteen ? backendSink(backend, opts.weights) : undefined });
  const parsed: ParsedModel = parseModelFiles(
    {
      config: (await readText(files, 'config.json')) ?? missing(files, 'config.json'),
      weights: tensors,
      tokenizer: (await readText(files, 'tokenizer.json')) ?? missing(files, 'tokenizer.json'),
      tokenizerConfig: await readText(files, 'tokenizer_config.json'),
    },
    files.location.replace(/\/$/, ''),
  );
  // config: with generation_config; the tensors are ours, so each goes once the backend holds it
  return new TextModel(config, parsed.tensors, parsed.tokenizer, backend, files, { weights: opts.weights, releaseHostWeights: true });
}

/**
 * A GGUF file (llama.cpp's format) of the source: config, weights and tokenizer in one file
 * (Q8_0 matrices kept as the file's blocks, other quantized types widened to f32). Its chat
 * template is the file's tokenizer.chat_template, else the folder's (as for a model folder);
 * its draft heads are the folder's drafters/, checked against the model like any others.
 */
async function loadGgufModel(files: FileSource, path: string, backend: Backend, weights?: WeightFormat): Promise<TextModel> {
  const source = locate(files, path);
  let whole: Promise<Uint8Array | undefined> | undefined; // a source without ranges: the file read once
  const readRange = files.readRange
    ? (start: number, end: number) => files.readRange!(path, start, end)
    : async (start: number, end: number) => (await (whole ??= files.read(path)))?.subarray(start, end);
  const layout = await readGgufLayout(readRange, source);
  checkFits(backend, layout.config, defaultMaxSeq(layout.config)); // before any weight is read
  const gguf = await readGguf(readRange, source, { layout });
  if (gguf.tokenizerJson === undefined) throw new FormatError(source, 'no tokenizer (no tokenizer.ggml.* keys)');
  const tokenizer = readHfTokenizer(gguf.tokenizerJson, `${source} (tokenizer)`, {
    config: gguf.tokenizerConfigJson, configSource: `${source} (tokenizer.ggml.add_bos_token)`,
    bosTokenId: gguf.config.bos_token_id, eosTokenId: gguf.config.eos_token_id,
  });
  checkTokenizerFits(tokenizer, gguf.config.vocab_size, `${source} (tokenizer)`);
  return new TextModel(gguf.config, gguf.tensors, tokenizer, backend, files, { weights, releaseHostWeights: true, chatTemplate: ggufChatTemplate(gguf, source) });
}

function missing(source: FileSource, path: string): never {
  throw new Error(`${locate(source, path)}: file not found (a model folder needs config.json, model.safetensors and tokenizer.json)`);
}
