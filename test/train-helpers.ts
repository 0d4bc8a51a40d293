/** A toy corpus in the Brown file format: 20 documents of sentences from a tiny grammar. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../src/util/random.js';

const SUBJECTS = ['The/at cat/nn', 'A/at dog/nn', 'The/at bird/nn', 'My/pp$ friend/nn'];
const VERBS = ['saw/vbd', 'liked/vbd', 'chased/vbd', 'found/vbd'];
const OBJECTS = ['the/at ball/nn', 'a/at mouse/nn', 'the/at tree/nn', 'his/pp$ hat/nn'];

export function toyDocument(seed: number, sentences: number): string {
  const rng = new Rng(seed);
  const pick = (xs: string[]): string => xs[rng.int(xs.length)]!;
  const lines: string[] = [];
  for (let s = 0; s < sentences; s++) {
    const line = `${pick(SUBJECTS)} ${pick(VERBS)} ${pick(OBJECTS)} ./.`;
    lines.push(s % 4 === 0 ? `\n\n\t${line}` : line);
  }
  return lines.join('\n') + '\n';
}

/** writes ca01 .. ca20 into `dir` */
export async function writeToyCorpus(dir: string, docs = 20, sentences = 60): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let d = 1; d <= docs; d++) await writeFile(join(dir, `ca${String(d).padStart(2, '0')}`), toyDocument(d, sentences));
}
