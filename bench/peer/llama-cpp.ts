/**
 * The peer engine of the peer benchmark: llama.cpp's CPU build, driven through the
 * node-llama-cpp npm package at its lowest level that takes token ids and gives back the
 * greedy next token (LlamaContextSequence.controlledEvaluate).
 *
 * node-llama-cpp is not a dependency of ctcspec: scripts/install-peer.sh puts it in
 * bench/peer/node_modules, and it is imported from there at run time, so ctcspec builds and
 * type-checks without it. The few parts of its API used here are typed below by hand.
 *
 * Settings, and why:
 * - gpu: false, build: 'never', skipDownload: true: the prebuilt linux-x64 CPU binary only;
 *   never a download or a build from source.
 * - maxThreads: 0 on the Llama instance and threads { ideal: n, min: n } on the context: the
 *   thread count asked for is the count used (otherwise node-llama-cpp treats it as a hint).
 * - KV cache in F32 (the default is F16) and flash attention off: the same arithmetic as
 *   ctcspec's f32 cache, so f32 greedy tokens can be compared one for one.
 * - temperature 0 and no repeat penalty: node-llama-cpp's sampler chain is then the token
 *   bias stage (none given) and llama.cpp's greedy sampler (the first of equal maxima), as
 *   ctcspec's argmax.
 * llama.cpp's worker threads spin in their barriers (no yield, no setting for it through
 * node-llama-cpp), so with as many threads as cores, anything else running on the machine
 * makes its multi-thread runs collapse: measure on a quiet machine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The version scripts/install-peer.sh installs; another one is refused, to keep results comparable. */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

// ---- the parts of node-llama-cpp's API this file uses ----

type Token = number;
interface SampleOptions { temperature?: number; topK?: number; topP?: number; minP?: number }
type ControlledInput = Token | [Token, { generateNext?: { token?: boolean; probabilities?: boolean; options?: SampleOptions } }];
interface ControlledOutput { next: { token?: Token | null; probabilities?: Map<Token, number> } }

interface NlcSequence {
  clearHistory(): Promise<void>;
  controlledEvaluate(input: ControlledInput[]): Promise<Array<ControlledOutput | undefined>>;
}
interface NlcContext {
  readonly currentThreads: number;
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  createContext(opts: Record<string, unknown>): Promise<NlcContext>;
  dispose(): Promise<void>;
}
interface NlcLlama {
  readonly cpuMathCores: number;
  readonly buildType: string;
  readonly llamaCppRelease: { repo: string; release: string };
  loadModel(opts: Record<string, unknown>): Promise<NlcModel>;
  dispose(): Promise<void>;
}
interface NlcModule { getLlama(opts: Record<string, unknown>): Promise<NlcLlama> }

// ---- locating and loading the package ----

/** The folder scripts/install-peer.sh installs into: bench/peer of the repository. */
export function peerDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  // bench/peer/llama-cpp.ts runs from the sources (vitest) or from dist/bench/peer (the build)
  for (let up = 0; up < 6; up++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'scripts', 'install-peer.sh'))) return join(dir, 'bench', 'peer');
  }
  throw new Error(`bench/peer: no repository root (with scripts/install-peer.sh) above ${fileURLToPath(import.meta.url)}`);
}

export class PeerMissingError extends Error {
  constructor(problem: string) {
    super(`${problem}: run scripts/install-peer.sh (node-llama-cpp ${NODE_LLAMA_CPP_VERSION} and its linux-x64 CPU binary, into bench/peer/node_modules)`);
    this.name = 'PeerMissingError';
  }
}

async function importNodeLlamaCpp(): Promise<{ module: NlcModule; version: string }> {
  const packageDir = join(peerDir(), 'node_modules', 'node-llama-cpp');
  const manifest = join(packageDir, 'package.json');
  if (!existsSync(manifest)) throw new PeerMissingError(`node-llama-cpp is not installed (no ${manifest})`);
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  if (version !== NODE_LLAMA_CPP_VERSION) throw new PeerMissingError(`bench/peer has node-llama-cpp ${version}, the bench pins ${NODE_LLAMA_CPP_VERSION}`);
  const module = (await import(pathToFileURL(join(packageDir, 'dist', 'index.js')).href)) as NlcModule;
  return { module, version };
}

// ---- the engine ----

export interface PeerRun {
  /** the greedy tokens: the one after the prompt, then one per decode step */
  tokens: number[];
  prefillMs: number;
  decodeMs: number;
}

/** What the results say about the peer: versions and the binary in use. */
export interface PeerInfo { nodeLlamaCpp: string; llamaCpp: string; build: string }

/** llama.cpp loaded once; models opened per GGUF file. */
export class LlamaCppPeer {
  private constructor(
    private readonly llama: NlcLlama,
    readonly info: PeerInfo,
  ) {}

  static async open(): Promise<LlamaCppPeer> {
    const { module, version } = await importNodeLlamaCpp();
    const llama = await module.getLlama({
      gpu: false,
      build: 'never',
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      maxThreads: 0, // no cap: each context's thread count is the one it asks for
      logLevel: 'error',
    });
    const release = llama.llamaCppRelease;
    return new LlamaCppPeer(llama, { nodeLlamaCpp: version, llamaCpp: `${release.repo} ${release.release}`, build: llama.buildType });
  }

  /** A model from `ggufPath` with one sequence of room for `contextSize` tokens, on `threads` threads. */
  async session(ggufPath: string, contextSize: number, batchSize: number, threads: number): Promise<PeerSession> {
    const model = await this.llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
    const context = await model.createContext({
      contextSize,
      batchSize,
      sequences: 1,
      threads: { ideal: threads, min: threads },
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    if (context.currentThreads !== threads) throw new Error(`llama.cpp context runs ${context.currentThreads} threads, ${threads} asked for`);
    return new PeerSession(model, context, context.getSequence());
  }

  async close(): Promise<void> {
    await this.llama.dispose();
  }
}

const GREEDY = { generateNext: { token: true, options: { temperature: 0 } } } as const;
/** the model's own next-token distribution: softmax at temperature 1, nothing cut off */
const DISTRIBUTION = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } } as const;

export class PeerSession {
  constructor(
    private readonly model: NlcModel,
    private readonly context: NlcContext,
    private readonly sequence: NlcSequence,
  ) {}

  /** From an empty cache: the prompt in one evaluation, then `newTokens - 1` one-token steps. */
  async greedy(prompt: readonly number[], newTokens: number): Promise<PeerRun> {
    await this.sequence.clearHistory();
    const input: ControlledInput[] = [...prompt.slice(0, -1), [prompt[prompt.length - 1]!, GREEDY]];
    const tokens: number[] = [];
    const t0 = performance.now();
    tokens.push(nextToken(await this.sequence.controlledEvaluate(input), input.length - 1));
    const t1 = performance.now();
    const step: ControlledInput[] = [[0, GREEDY]];
    while (tokens.length < newTokens) {
      step[0] = [tokens[tokens.length - 1]!, GREEDY];
      tokens.push(nextToken(await this.sequence.controlledEvaluate(step), 0));
    }
    const t2 = performance.now();
    return { tokens, prefillMs: t1 - t0, decodeMs: t2 - t1 };
  }

  /** From an empty cache: log-probabilities (vocabSize) of the token after `prompt`; -Infinity where llama.cpp gives none. */
  async nextLogProbs(prompt: readonly number[], vocabSize: number): Promise<Float64Array> {
    await this.sequence.clearHistory();
    const input: ControlledInput[] = [...prompt.slice(0, -1), [prompt[prompt.length - 1]!, DISTRIBUTION]];
    const probabilities = (await this.sequence.controlledEvaluate(input))[input.length - 1]?.next.probabilities;
    if (!probabilities) throw new Error('llama.cpp returned no probabilities for the last prompt token');
    const out = new Float64Array(vocabSize).fill(-Infinity);
    for (const [token, p] of probabilities) out[token] = Math.log(p);
    return out;
  }

  async close(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}

function nextToken(out: Array<ControlledOutput | undefined>, index: number): number {
  const token = out[index]?.next.token;
  if (token == null) throw new Error(`llama.cpp returned no next token for input ${index}`);
  return token;
}
