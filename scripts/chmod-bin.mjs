// Make the CLI entry point executable after tsc (npm's bin linking expects it).
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
if (existsSync(bin)) chmodSync(bin, 0o755);
