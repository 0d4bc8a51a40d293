/**
 * The static file server behind `ctcspec serve`: it serves the files under its root with their
 * content types, never a file outside it (property test: random request paths of `..`, `.`,
 * %-escapes and names, against a model of path resolution written as a stack of segments),
 * 404s what is missing, and the CLI command serves the explainer page.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentType, EXPLAINER_PATH, serveStatic, type StaticServer } from '../src/node/serve.js';

const repoRoot = resolve(import.meta.dirname, '..');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** one request with the path sent exactly as given (fetch and URL would resolve `..` first) */
function raw(server: StaticServer, path: string, method = 'GET'): Promise<Reply> {
  const { hostname, port } = new URL(server.url);
  return new Promise((ok, fail) => {
    const req = request({ hostname, port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end();
  });
}

// The fixture: <tmp>/root is served; <tmp>/secret.txt beside it must never be.
const tmp = mkdtempSync(join(tmpdir(), 'ctcspec-serve-'));
const root = join(tmp, 'root');
const SECRET = 'the secret beside the served folder';
const FILES: Record<string, string> = {
  'index.html': '<!doctype html><p>top',
  'a.js': 'export const a = 1;',
  'b.wasm': '\0asm',
  'c.json': '{"c": 3}',
  'd.safetensors': 'weights',
  'e.unknown': 'what is this',
  'site/index.html': '<!doctype html><p>site',
  'site/page.css': 'p { color: red }',
  'empty/.keep': '',
};
let server: StaticServer;

beforeAll(async () => {
  for (const [path, text] of Object.entries(FILES)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  writeFileSync(join(tmp, 'secret.txt'), SECRET);
  // a browser dependency installed beside the served package, as npm lays out a dependency
  mkdirSync(join(tmp, 'node_modules', '@huggingface', 'jinja', 'dist'), { recursive: true });
  writeFileSync(join(tmp, 'node_modules', '@huggingface', 'jinja', 'package.json'), '{"name": "@huggingface/jinja"}');
  writeFileSync(join(tmp, 'node_modules', '@huggingface', 'jinja', 'dist', 'index.js'), 'export const jinja = 1;');
  writeFileSync(join(tmp, 'node_modules', 'other.js'), 'not a browser dependency');
  symlinkSync(join(tmp, 'secret.txt'), join(root, 'link-out.txt'));
  symlinkSync(join(root, 'a.js'), join(root, 'link-in.js'));
  server = await serveStatic({ root, port: 0 });
});

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('static server', () => {
  it('serves a browser dependency installed above the root, and nothing else of node_modules', async () => {
    const dep = await fetch(`${server.url}node_modules/@huggingface/jinja/dist/index.js`);
    expect(dep.status).toBe(200);
    expect(dep.headers.get('content-type')).toMatch(/javascript/);
    expect(await dep.text()).toBe('export const jinja = 1;');
    expect((await fetch(`${server.url}node_modules/other.js`)).status).toBe(404);
    expect((await fetch(`${server.url}node_modules/@huggingface/jinja/..%2F..%2Fother.js`)).status).toBe(403);
  });

  it('serves each file with its content type', async () => {
    const expected: Record<string, string> = {
      'a.js': 'text/javascript; charset=utf-8',
      'b.wasm': 'application/wasm',
      'c.json': 'application/json',
      'd.safetensors': 'application/octet-stream',
      'e.unknown': 'application/octet-stream',
      'site/page.css': 'text/css; charset=utf-8',
    };
    for (const [path, type] of Object.entries(expected)) {
      const r = await raw(server, `/${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers['content-type'], path).toBe(type);
      expect(r.body.toString(), path).toBe(FILES[path]);
      expect(contentType(path)).toBe(type);
    }
  });

  it("a folder is its index.html; without its slash it redirects to it, the query kept; '/' redirects to the explainer", async () => {
    const page = await raw(server, '/site/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body.toString()).toBe(FILES['site/index.html']);
    const bare = await raw(server, '/site?x=1');
    expect(bare.status).toBe(301);
    expect(bare.headers.location).toBe('/site/?x=1');
    expect((await raw(server, '//site')).headers.location).toBe('/site/'); // never "//site/", another host to a browser
    const top = await raw(server, '/');
    expect(top.status).toBe(302);
    expect(top.headers.location).toBe(EXPLAINER_PATH);
  });

  it('404s a missing file, a folder without index.html, and a file asked for as a folder', async () => {
    for (const path of ['/missing.js', '/site/missing/', '/empty/', '/a.js/']) expect((await raw(server, path)).status, path).toBe(404);
  });

  it('answers HEAD with the headers alone, and refuses other methods', async () => {
    const head = await raw(server, '/c.json', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(FILES['c.json']!.length));
    expect(head.body.length).toBe(0);
    const post = await raw(server, '/c.json', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('refuses a link that leads out of the root, serves one that stays in', async () => {
    const out = await raw(server, '/link-out.txt');
    expect(out.status).toBe(403);
    expect(out.body.toString()).not.toContain(SECRET);
    const inside = await raw(server, '/link-in.js');
    expect(inside.status).toBe(200);
    expect(inside.body.toString()).toBe(FILES['a.js']);
  });

  it('any request path: 403 exactly when it leaves the root (or cannot name a file), else the file, a redirect or 404; never the secret', async () => {
    const segment = fc.constantFrom('..', '.', '', 'root', 'site', 'a.js', 'index.html', 'secret.txt', 'missing', '%2e%2e', '%2E%2e', '.%2e', '%2e', '..%2f..', '%2fsecret.txt', '%5c..', 'a%00', '%zz', '%20');
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 6 }), async (segments) => {
        const path = '/' + segments.join('/');
        const r = await raw(server, path);
        expect(r.body.toString()).not.toContain(SECRET);
        if (path === '/') {
          expect(r.status).toBe(302); // to the explainer
          return;
        }
        const target = modelResolve(root, path);
        if (target === null) {
          expect(r.status, path).toBe(403);
          return;
        }
        const info = existsSync(target) ? statSync(target) : null;
        const asFolder = path.split('?')[0]!.endsWith('/');
        if (info?.isFile() && !asFolder) {
          expect(r.status, path).toBe(200);
          expect(r.body.equals(readFileSync(target)), path).toBe(true);
        } else if (info?.isDirectory() && !asFolder) expect(r.status, path).toBe(301);
        else if (info?.isDirectory() && existsSync(join(target, 'index.html'))) expect(r.status, path).toBe(200);
        else expect(r.status, path).toBe(404);
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * Where a request path lands, written independently of the server: decode the %-escapes,
 * refuse a NUL or a backslash, then walk the segments from the filesystem root down through
 * the served folder's own segments, `..` popping one (never above '/'), `.` and '' staying.
 * Outside (null) when the walk does not end inside the served folder.
 */
function modelResolve(served: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const rootSegments = served.split('/').filter(Boolean);
  const stack = [...rootSegments];
  for (const s of decoded.split('/')) {
    if (s === '..') stack.pop();
    else if (s !== '.' && s !== '') stack.push(s);
  }
  const inside = stack.length >= rootSegments.length && rootSegments.every((s, i) => stack[i] === s);
  return inside ? '/' + stack.join('/') : null;
}

describe('ctcspec serve', () => {
  it('prints the explainer URL and serves the page, the library and the weights from the package root', async () => {
    const cli = join(repoRoot, 'dist/src/cli/main.js');
    if (!existsSync(cli)) throw new Error('dist/ is missing: run npm run build first');
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0'], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((ok, fail) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const found = /explainer: (\S+)/.exec(out);
          if (found) ok(found[1]!);
        });
        child.on('exit', (code) => fail(new Error(`ctcspec serve exited with ${code} before printing the URL: ${out}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/examples\/explainer\/$/);
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('CTC drafting, step by step');
      const lib = await fetch(new URL('/dist/src/index.js', url));
      expect(lib.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      const weights = await fetch(new URL('/weights/base/model.safetensors', url), { method: 'HEAD' });
      expect(weights.status).toBe(200);
      expect(weights.headers.get('content-type')).toBe('application/octet-stream');
      expect((await fetch(new URL('/weights/base/missing.json', url))).status).toBe(404);
    } finally {
      child.kill();
    }
  });

  it('a bad --port is a usage error (exit 2) naming it', async () => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'serve', '--port', '70000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((ok) => child.on('exit', ok));
    expect(code).toBe(2);
    expect(stderr).toContain('--port');
  });
});
