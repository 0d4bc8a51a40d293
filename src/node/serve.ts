/**
 * A small static file server for the package's pages (`ctcspec serve`): the browser pages
 * import the library from dist/ and fetch the model from weights/, so the server serves the
 * package root, where dist/, weights/ and examples/ all resolve.
 *
 *   const { url, close } = await serveStatic({ root: PACKAGE_ROOT, port: 8080 });
 *   // url + 'examples/explainer/' is the CTC drafting explainer
 *
 * Only GET and HEAD. A request's path is decoded and must stay inside the root, the file it
 * names included once symbolic links are followed: `..` that climbs out, a backslash, a NUL
 * byte or a malformed escape is refused with 403. A missing file is 404; a folder is served
 * by its index.html, and asked for without its trailing slash it is redirected to it (the
 * page's relative imports resolve against that slash). `/` redirects to the explainer.
 *
 * The pages' import maps name the library's browser dependencies as
 * /node_modules/<package>/...: when ctcspec is installed as a dependency, those packages sit
 * beside it, above the root, so such a path is served from wherever Node would find the
 * package (the nearest node_modules/<package> at or above the root), and only for the
 * packages in BROWSER_DEPENDENCIES.
 *
 * Files are served with the two headers of a cross-origin isolated page (CROSS_ORIGIN_ISOLATED),
 * so the pages may run the CPU backend on several threads.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** the package's root folder: three levels above dist/src/node/serve.js when built, two above src/node/serve.ts */
export const PACKAGE_ROOT = ['../../..', '../..']
  .map((up) => resolve(fileURLToPath(new URL(up, import.meta.url))))
  .find(isCtcspecRoot) ?? resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** where the explainer page lives, from the root */
export const EXPLAINER_PATH = '/examples/explainer/';

/** the packages the library imports in a browser (the pages' import maps point at them; gpu.js: the WebGL backend's script) */
export const BROWSER_DEPENDENCIES = ['@huggingface/tokenizers', '@huggingface/jinja', 'gpu.js'];

/** the folder of an installed package as Node resolves it from `root`, or null */
export function dependencyDir(root: string, name: string): string | null {
  for (let dir = resolve(root); ; dir = resolve(dir, '..')) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (resolve(dir, '..') === dir) return null;
  }
}

/** loopback only unless asked: the server hands out every file under the package root */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;

/**
 * Headers that make a page cross-origin isolated, so it may share memory with workers
 * (SharedArrayBuffer): the CPU backend's threads need it. Everything the pages load comes
 * from this server, so requiring same-origin (or CORP-marked) subresources costs nothing.
 */
export const CROSS_ORIGIN_ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } as const;

/** Content-Type by file extension; anything else is application/octet-stream. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
};

export function contentType(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * The file a URL path names under `root` (absolute, `root` itself resolved), or null when
 * the path leaves the root or cannot name a file: a malformed %-escape, a NUL byte, a
 * backslash (a separator on Windows, a plain character here: refused on both), or `..` that
 * climbs above the root. Lexical only: symbolic links are checked when the file is opened.
 */
export function resolveInside(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const base = resolve(root);
  const full = resolve(base, '.' + (decoded.startsWith('/') ? decoded : '/' + decoded));
  return isInside(base, full) ? full : null;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith('..' + sep));
}

/** A request handler serving the files under `root`. */
export function staticHandler(root: string): (req: IncomingMessage, res: ServerResponse) => void {
  const base = resolve(root);
  const realBase = realpath(base);
  return (req, res) => {
    respond(base, realBase, req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`500 ${e.message}\n`);
    });
  };
}

async function respond(base: string, realBase: Promise<string>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const text = (status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(req.method === 'HEAD' ? undefined : `${status} ${body}\n`);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, `${req.method} not allowed: only GET and HEAD`, { allow: 'GET, HEAD' });
  const raw = req.url ?? '/';
  const query = raw.indexOf('?');
  let urlPath = query < 0 ? raw : raw.slice(0, query);
  if (urlPath === '/') return text(302, `see ${EXPLAINER_PATH}`, { location: EXPLAINER_PATH });
  const dependency = BROWSER_DEPENDENCIES.find((name) => urlPath.startsWith(`/node_modules/${name}/`));
  const dependencyBase = dependency === undefined ? null : dependencyDir(base, dependency);
  if (dependencyBase !== null) {
    // a browser dependency, wherever it is installed; the path stays inside its folder
    base = dependencyBase;
    realBase = realpath(base);
    urlPath = urlPath.slice(`/node_modules/${dependency}`.length);
  }
  const path = resolveInside(base, urlPath);
  if (path === null) return text(403, `${urlPath}: outside the served folder`);
  const found = await fileOrIndex(path, urlPath.endsWith('/'));
  if (found === 'missing') return text(404, `${urlPath}: not found`);
  if (found === 'folder') {
    const slashed = `/${urlPath.replace(/^\/+/, '')}/`; // one leading slash: "//host" would send the browser to another site
    return text(301, `see ${slashed}`, { location: slashed + (query < 0 ? '' : raw.slice(query)) });
  }
  const real = await realpath(found.file);
  if (!isInside(await realBase, real)) return text(403, `${urlPath}: a link that leaves the served folder`);
  res.writeHead(200, { 'content-type': contentType(found.file), 'content-length': String(found.size), 'cache-control': 'no-cache', ...CROSS_ORIGIN_ISOLATED });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(real);
  stream.on('error', (e) => res.destroy(e));
  stream.pipe(res);
}

/** a file, a folder's index.html, 'folder' for a folder asked for without its slash, or 'missing' */
async function fileOrIndex(path: string, askedAsFolder: boolean): Promise<{ file: string; size: number } | 'folder' | 'missing'> {
  const info = await stat(path).catch(() => null);
  if (!info) return 'missing';
  if (info.isFile()) return askedAsFolder ? 'missing' : { file: path, size: info.size };
  if (!info.isDirectory()) return 'missing';
  if (!askedAsFolder) return 'folder';
  const index = await stat(join(path, 'index.html')).catch(() => null);
  return index?.isFile() ? { file: join(path, 'index.html'), size: index.size } : 'missing';
}

export interface ServeOptions {
  /** the folder served (default: the package root) */
  root?: string;
  /** 0 picks a free port (default 8080) */
  port?: number;
  /** default 127.0.0.1 (this machine only); 0.0.0.0 serves the network */
  host?: string;
}

export interface StaticServer {
  server: Server;
  /** the server's address, ending in '/' */
  url: string;
  close(): Promise<void>;
}

/** Serve `root` over HTTP until closed. A port in use is an error naming it. */
export async function serveStatic(opts: ServeOptions = {}): Promise<StaticServer> {
  const root = opts.root ?? PACKAGE_ROOT, host = opts.host ?? DEFAULT_HOST, port = opts.port ?? DEFAULT_PORT;
  const server = createServer(staticHandler(root));
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      fail(e.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is in use: pick another with --port`) : e);
    });
    server.listen(port, host, ok);
  });
  const { port: bound } = server.address() as AddressInfo;
  return { server, url: `http://${urlHost(host)}:${bound}/`, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

/** the host as a browser reaches it: a wildcard address means this machine, IPv6 goes in brackets */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

function isCtcspecRoot(dir: string): boolean {
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) return false;
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'ctcspec';
  } catch {
    return false;
  }
}
