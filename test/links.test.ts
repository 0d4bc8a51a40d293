// Every relative reference in the project's Markdown (README.md, bench/RESULTS.md, docs/*.md)
// resolves: markdown links and images to a file or folder of the repository, #anchors to a
// heading of the page they point into, and backticked repository paths (`src/decode/tree.ts`,
// `weights/base/`) to something that exists.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** top-level folders that are build output or local state, not part of the repository */
const NOT_IN_REPOSITORY = new Set(['node_modules', 'dist', 'checkpoints', '.git']);
const PAGES = ['README.md', 'bench/RESULTS.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen. */
export function headingSlug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors a page's headings get (a repeated heading gets -1, -2, ...). */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>(), anchors = new Set<string>();
  for (const line of withoutCodeBlocks(markdown)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const slug = headingSlug(m[1]!), n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** The page's lines with fenced code blocks blanked (commands there are not references). */
function withoutCodeBlocks(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return '';
    }
    return fenced ? '' : line;
  });
}

/** A backticked string that names a repository path: no spaces or placeholders, a folder of the repository first. */
function looksLikeRepositoryPath(code: string, topLevel: ReadonlySet<string>): boolean {
  if (!/^[\w.\-/*{},]+$/.test(code) || !code.includes('/') || code.startsWith('/')) return false;
  return topLevel.has(code.split('/')[0]!);
}

/** Does `path` (relative to the repository root; may end in a glob segment with * or {a,b}) name something? */
function exists(root: string, path: string): boolean {
  const full = normalize(join(root, path));
  if (relative(root, full).startsWith('..')) return false;
  const last = path.replace(/\/$/, '').split('/').pop()!;
  if (!/[*{]/.test(last)) return existsSync(full);
  const dir = dirname(full);
  const pattern = new RegExp(`^${last.replace(/[.+^$()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\{([^}]*)\}/g, (_, alts: string) => `(${alts.split(',').join('|')})`)}$`);
  return existsSync(dir) && statSync(dir).isDirectory() && readdirSync(dir).some((f) => pattern.test(f));
}

/**
 * The references in `markdown` (the page at `page`, relative to `root`) that resolve to
 * nothing, one message each: "page:line: what (why)".
 */
export function brokenReferences(root: string, page: string, markdown: string): string[] {
  const topLevel = new Set(readdirSync(root).filter((f) => !NOT_IN_REPOSITORY.has(f)));
  const pageDir = dirname(page), problems: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (file: string): Set<string> => {
    if (!anchorCache.has(file)) anchorCache.set(file, anchorsOf(file === page ? markdown : readFileSync(join(root, file), 'utf8')));
    return anchorCache.get(file)!;
  };
  withoutCodeBlocks(markdown).forEach((line, i) => {
    const at = `${page}:${i + 1}`;
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z\d+.-]*:/i.test(target)) continue; // a URL (https:, mailto:): not a repository file
      const [pathPart, anchor] = target.split('#') as [string, string | undefined];
      const file = pathPart === '' ? page : normalize(join(pageDir, decodeURIComponent(pathPart)));
      if (pathPart !== '' && !exists(root, file)) {
        problems.push(`${at}: link ${target} (no ${file} in the repository)`);
        continue;
      }
      if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) problems.push(`${at}: link ${target} (no heading #${anchor} in ${file})`);
    }
    for (const m of line.replace(/\[[^\]]*\]\([^)]*\)/g, '').matchAll(/`([^`]+)`/g)) {
      const code = m[1]!;
      if (looksLikeRepositoryPath(code, topLevel) && !exists(root, code)) problems.push(`${at}: path \`${code}\` (not in the repository)`);
    }
  });
  return problems;
}

describe('links and paths in the documentation', () => {
  for (const page of PAGES) {
    it(`every relative reference in ${page} resolves`, () => {
      expect(brokenReferences(ROOT, page, readFileSync(join(ROOT, page), 'utf8'))).toEqual([]);
    });
  }

  it('finds broken links, images, anchors and paths, and only those', () => {
    const page = 'docs/example.md';
    const markdown = [
      '# A page', // line 1
      '[ok](../README.md) [ok folder](../src/decode/) [ok anchor](#a-page) [web](https://example.org/x.md)', // 2
      '[gone](missing.md) ![gone picture](../nowhere.png)', // 3
      '[bad anchor](../README.md#no-such-heading) [bad local anchor](#elsewhere)', // 4
      'See `src/decode/tree.ts`, `src/decode/nothing.ts`, `bench/results/spec*.{json,svg}` and `bench/results/none*.json`.', // 5
      'Not paths: `npm test`, `ctcspec/node`, `<model>/drafters/<name>/`, `dist/src/index.js`, `/root/out/x`.', // 6
      '```', // 7
      '[inside a code block](missing-too.md) `src/not/checked.ts`', // 8
      '```', // 9
    ].join('\n');
    expect(brokenReferences(ROOT, page, markdown)).toEqual([
      'docs/example.md:3: link missing.md (no docs/missing.md in the repository)',
      'docs/example.md:3: link ../nowhere.png (no nowhere.png in the repository)',
      'docs/example.md:4: link ../README.md#no-such-heading (no heading #no-such-heading in README.md)',
      'docs/example.md:4: link #elsewhere (no heading #elsewhere in docs/example.md)',
      'docs/example.md:5: path `src/decode/nothing.ts` (not in the repository)',
      'docs/example.md:5: path `bench/results/none*.json` (not in the repository)',
    ]);
  });

  it('makes the anchors GitHub makes', () => {
    expect(headingSlug("3. Training data: the base model's own continuations")).toBe('3-training-data-the-base-models-own-continuations');
    expect(headingSlug('Verification, greedy and sampled')).toBe('verification-greedy-and-sampled');
    expect(headingSlug('The `ctcspec` command')).toBe('the-ctcspec-command');
  });
});
