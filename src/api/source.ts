/**
 * Where a model's files come from, the same way in every runtime. A model is a folder:
 *
 *   config.json, model.safetensors, tokenizer.json     the base model
 *   drafters/<name>/config.json, model.safetensors     trained draft heads (optional)
 *   draft-vocab.json                                   a CTC head's draft vocabulary (optional)
 *
 * `urlSource` reads it over HTTP (browsers, Deno, Node 20's fetch); the Node adapter adds
 * `dirSource` for a directory on disk (ctcspec/node).
 */
import { FormatError } from '../io/errors.js';
import { locate } from '../io/checkpoint.js';

export interface FileSource {
  /** the folder, for messages: a directory path or a URL */
  readonly location: string;
  /** a file's bytes by its path inside the folder ('drafters/ctc/config.json'), or undefined when there is none */
  read(path: string): Promise<Uint8Array | undefined>;
  /**
   * bytes [start, end) of a file (fewer where the file ends first, none past its end), or
   * undefined when there is none: weights are read this way, a tensor at a time, so a file
   * over 2 GiB (more than one JavaScript buffer holds) loads, and memory stays near the
   * weights' f32 size
   */
  readRange?(path: string, start: number, end: number): Promise<Uint8Array | undefined>;
  /** the entries of a sub-folder, when the source can list them (a directory can; HTTP cannot) */
  list?(folder: string): Promise<string[]>;
}

const HTTP_PARTIAL_CONTENT = 206;
const HTTP_NOT_FOUND = 404;
const HTTP_RANGE_NOT_SATISFIABLE = 416;

/**
 * The folder at `base` over HTTP: 404 means "no such file", any other failure is an error.
 * Ranges are HTTP Range requests; a server that ignores them (200, the whole file) is
 * served from that one download, kept for the file's later ranges.
 */
export function urlSource(base: string | URL, fetchFn: typeof fetch = fetch): FileSource {
  const root = new URL(base);
  if (!root.pathname.endsWith('/')) root.pathname += '/'; // relative paths resolve inside the folder
  let whole: { path: string; bytes: Uint8Array } | undefined; // the last file a server sent whole
  return {
    location: root.href,
    async read(path) {
      const url = new URL(path, root);
      const r = await fetchFn(url);
      if (r.status === HTTP_NOT_FOUND) return undefined;
      if (!r.ok) throw new FormatError(url.href, `HTTP ${r.status} ${r.statusText}`);
      return new Uint8Array(await r.arrayBuffer());
    },
    async readRange(path, start, end) {
      if (whole?.path === path) return whole.bytes.subarray(start, end);
      const url = new URL(path, root);
      if (end <= start) return new Uint8Array(0);
      const r = await fetchFn(url, { headers: { Range: `bytes=${start}-${end - 1}` } });
      if (r.status === HTTP_NOT_FOUND) return undefined;
      if (r.status === HTTP_RANGE_NOT_SATISFIABLE) return new Uint8Array(0); // start is past the end
      if (!r.ok) throw new FormatError(url.href, `HTTP ${r.status} ${r.statusText}`);
      const bytes = new Uint8Array(await r.arrayBuffer());
      if (r.status === HTTP_PARTIAL_CONTENT) return bytes.subarray(0, end - start);
      whole = { path, bytes };
      return bytes.subarray(start, end);
    },
  };
}

/** Files held in memory (tests, bundlers, files a page got from the user). */
export function memorySource(files: Record<string, Uint8Array | string>, location = 'memory'): FileSource {
  return {
    location,
    async read(path) {
      const f = files[path];
      return typeof f === 'string' ? new TextEncoder().encode(f) : f;
    },
    async readRange(path, start, end) {
      const f = files[path];
      return (typeof f === 'string' ? new TextEncoder().encode(f) : f)?.subarray(start, end);
    },
    async list(folder) {
      const prefix = folder.endsWith('/') ? folder : `${folder}/`;
      return [...new Set(Object.keys(files).filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length).split('/')[0]!))];
    },
  };
}

/** A file's text, or undefined when there is none. */
export async function readText(source: FileSource, path: string): Promise<string | undefined> {
  const bytes = await source.read(path);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}

/** A file that must exist. */
export async function readRequired(source: FileSource, path: string, why: string): Promise<Uint8Array> {
  const bytes = await source.read(path);
  if (bytes === undefined) throw new FormatError(locate(source, path), `file not found (${why})`);
  return bytes;
}
