/**
 * Command-line options, checked: every value the user types is parsed strictly (an integer
 * option takes decimal digits only, so "1.5", "1e6", "0x10" and "" are refused rather than
 * read as something else) and range-checked, and every problem is a UsageError that names
 * the option and the value. The CLI exits with USAGE_EXIT_CODE for all of them.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const USAGE_EXIT_CODE = 2;

export class UsageError extends Error {}

/** what node's parseArgs returns as `values` */
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

type CommandOptions = NonNullable<ParseArgsConfig['options']>;
type CommandConfig<T extends CommandOptions> = { args: string[]; options: T; strict: true; allowPositionals: false };

/** parseArgs with its complaints (unknown option, missing value, stray argument) as UsageErrors */
export function parseCommandArgs<T extends CommandOptions>(command: string, args: string[], options: T): ReturnType<typeof parseArgs<CommandConfig<T>>> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError(`${command}: ${(e as Error).message.replace(/\n/g, ' ')} (see ctcspec --help)`);
    throw e;
  }
}

export interface Range {
  min?: number;
  max?: number;
  /** the minimum itself is refused (numbers only): "> min" instead of ">= min" */
  aboveMin?: boolean;
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The integer option `--name`, or `default` when absent (undefined when no default is given). */
export function intOption(values: OptionValues, name: string, range: Range & { default: number }): number;
export function intOption(values: OptionValues, name: string, range?: Range): number | undefined;
export function intOption(values: OptionValues, name: string, range: Range & { default?: number } = {}): number | undefined {
  const text = stringValue(values, name);
  if (text === undefined) return range.default;
  const n = Number(text);
  if (!INTEGER.test(text) || !Number.isSafeInteger(n) || !inRange(n, range)) throw badValue(name, text, `an integer ${rangeText(range)}`);
  return n;
}

/** The number option `--name` (decimal, optionally with an exponent), or `default` when absent. */
export function numberOption(values: OptionValues, name: string, range: Range & { default: number }): number;
export function numberOption(values: OptionValues, name: string, range?: Range): number | undefined;
export function numberOption(values: OptionValues, name: string, range: Range & { default?: number } = {}): number | undefined {
  const text = stringValue(values, name);
  if (text === undefined) return range.default;
  const n = Number(text);
  if (!DECIMAL.test(text) || !Number.isFinite(n) || !inRange(n, range)) throw badValue(name, text, `a number ${rangeText(range)}`);
  return n;
}

/** One of `choices`, or `default` when absent. */
export function choiceOption<C extends string>(values: OptionValues, name: string, choices: readonly C[], dflt: C): C;
export function choiceOption<C extends string>(values: OptionValues, name: string, choices: readonly C[]): C | undefined;
export function choiceOption<C extends string>(values: OptionValues, name: string, choices: readonly C[], dflt?: C): C | undefined {
  const text = stringValue(values, name);
  if (text === undefined) return dflt;
  if (!(choices as readonly string[]).includes(text)) throw badValue(name, text, `one of ${choices.join(', ')}`);
  return text as C;
}

/** A comma-separated list, each item one of `choices` (at least one item). */
export function listOption<C extends string>(values: OptionValues, name: string, choices: readonly C[]): C[] {
  const text = stringValue(values, name) ?? '';
  const items = text.split(',').filter(Boolean);
  const bad = items.find((item) => !(choices as readonly string[]).includes(item));
  if (items.length === 0 || bad !== undefined) throw badValue(name, text, `a comma-separated list of ${choices.join(', ')}`);
  return items as C[];
}

/** `--name N|auto`: 'auto', or an integer in `range`. */
export function intOrAutoOption(values: OptionValues, name: string, range: Range, dflt: number | 'auto' = 'auto'): number | 'auto' {
  const text = stringValue(values, name);
  if (text === undefined) return dflt;
  if (text === 'auto') return 'auto';
  const n = Number(text);
  if (!INTEGER.test(text) || !Number.isSafeInteger(n) || !inRange(n, range)) throw badValue(name, text, `auto or an integer ${rangeText(range)}`);
  return n;
}

/** A string option that must be given. */
export function requiredOption(values: OptionValues, name: string, command: string): string {
  const text = stringValue(values, name);
  if (text === undefined || text === '') throw new UsageError(`${command} needs --${name}`);
  return text;
}

/** A limit known only once the model is loaded (its context length, its prompts). */
export function checkAtMost(name: string, value: number, limit: number, what: string): void {
  if (value > limit) throw new UsageError(`--${name} must be at most ${limit} (${what}), got ${value}`);
}

function stringValue(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined || typeof v === 'string') return v;
  throw new TypeError(`option --${name} is not declared as a single string`); // a mistake in the caller's parseArgs table
}

function inRange(n: number, r: Range): boolean {
  if (r.min !== undefined && (r.aboveMin ? n <= r.min : n < r.min)) return false;
  return r.max === undefined || n <= r.max;
}

function rangeText(r: Range): string {
  if (r.min !== undefined && r.max !== undefined) return `in ${r.aboveMin ? '(' : '['}${r.min}, ${r.max}]`;
  if (r.min !== undefined) return `${r.aboveMin ? '>' : '>='} ${r.min}`;
  if (r.max !== undefined) return `<= ${r.max}`;
  return '';
}

function badValue(name: string, text: string, expected: string): UsageError {
  return new UsageError(`--${name} must be ${expected.trimEnd()}, got ${JSON.stringify(text)}`);
}
