/**
 * The CLI's option checks (src/cli/options.ts), against direct statements of each rule:
 * an integer option accepts exactly an optional sign and decimal digits, in range; a number
 * option exactly what Number reads from a plain decimal; every refusal is a UsageError
 * naming the option and the value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { choiceOption, intOption, intOrAutoOption, listOption, numberOption, parseCommandArgs, requiredOption, UsageError } from '../src/cli/options.js';

function refusal(run: () => unknown, name: string, text: string): string {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    const message = (e as Error).message;
    expect(message).toContain(`--${name} must be`);
    expect(message).toContain(JSON.stringify(text));
    return message;
  }
  throw new Error(`--${name} ${text} was accepted`);
}

/** "an optional sign, then one or more decimal digits", stated character by character */
function isIntegerText(s: string): boolean {
  const digits = s[0] === '+' || s[0] === '-' ? s.slice(1) : s;
  return digits.length > 0 && [...digits].every((c) => c >= '0' && c <= '9');
}

/** "sign? digits (. digits)? (e sign? digits)?" with a digit before or after the point, read left to right */
function isDecimalText(s: string): boolean {
  let i = 0;
  const sign = () => {
    if (s[i] === '+' || s[i] === '-') i++;
  };
  const digits = () => {
    const start = i;
    while (i < s.length && s[i]! >= '0' && s[i]! <= '9') i++;
    return i - start;
  };
  sign();
  let mantissa = digits();
  if (s[i] === '.') {
    i++;
    mantissa += digits();
  }
  if (mantissa === 0) return false;
  if (s[i] === 'e' || s[i] === 'E') {
    i++;
    sign();
    if (digits() === 0) return false;
  }
  return i === s.length;
}

const optionText = fc.string({ unit: fc.constantFrom('0', '1', '7', '9', '-', '+', '.', 'e', 'x', ' ', 'a'), maxLength: 6 });

describe('CLI options', () => {
  it('intOption accepts exactly the integer texts inside the range', () => {
    fc.assert(
      fc.property(optionText, fc.integer({ min: -20, max: 20 }), fc.integer({ min: 0, max: 40 }), (text, min, span) => {
        const range = { min, max: min + span };
        const n = Number(text);
        if (isIntegerText(text) && n >= range.min && n <= range.max) expect(intOption({ seed: text }, 'seed', range)).toBe(n);
        else expect(refusal(() => intOption({ seed: text }, 'seed', range), 'seed', text)).toContain(`an integer in [${min}, ${min + span}]`);
      }),
      { numRuns: 2000 },
    );
  });

  it('numberOption accepts plain decimals (with an exponent) inside the range, the minimum itself only when it is allowed', () => {
    fc.assert(
      fc.property(optionText, fc.boolean(), (text, aboveMin) => {
        const range = { min: 0, max: 1, aboveMin };
        const n = Number(text);
        const decimal = isDecimalText(text) && Number.isFinite(n);
        const inside = (aboveMin ? n > 0 : n >= 0) && n <= 1;
        if (decimal && inside) expect(numberOption({ 'top-p': text }, 'top-p', range)).toBe(n);
        else refusal(() => numberOption({ 'top-p': text }, 'top-p', range), 'top-p', text);
      }),
      { numRuns: 2000 },
    );
    expect(numberOption({ lr: '3e-3' }, 'lr', { min: 0, aboveMin: true })).toBe(0.003);
    expect(refusal(() => numberOption({ 'top-p': '0' }, 'top-p', { min: 0, max: 1, aboveMin: true }), 'top-p', '0')).toBe('--top-p must be a number in (0, 1], got "0"');
    expect(refusal(() => numberOption({ temperature: '-1' }, 'temperature', { min: 0 }), 'temperature', '-1')).toBe('--temperature must be a number >= 0, got "-1"');
    for (const text of ['Infinity', '1e999', 'NaN', '0x1', '']) refusal(() => numberOption({ t: text }, 't'), 't', text);
  });

  it('defaults, choices, lists, N|auto and required options', () => {
    expect(intOption({}, 'seed', { default: 3 })).toBe(3);
    expect(intOption({}, 'beam', { min: 1, max: 64 })).toBeUndefined();
    expect(refusal(() => intOption({ beam: '1e6' }, 'beam', { min: 1, max: 64 }), 'beam', '1e6')).toBe('--beam must be an integer in [1, 64], got "1e6"');
    expect(refusal(() => intOption({ seed: '9007199254740993' }, 'seed'), 'seed', '9007199254740993')).toBe('--seed must be an integer, got "9007199254740993"');
    expect(choiceOption({}, 'backend', ['cpu', 'webgpu'], 'cpu')).toBe('cpu');
    expect(choiceOption({ backend: 'webgpu' }, 'backend', ['cpu', 'webgpu'], 'cpu')).toBe('webgpu');
    expect(refusal(() => choiceOption({ backend: 'tpu' }, 'backend', ['cpu', 'webgpu'], 'cpu'), 'backend', 'tpu')).toBe('--backend must be one of cpu, webgpu, got "tpu"');
    expect(listOption({ backends: 'cpu,webgpu' }, 'backends', ['cpu', 'webgpu'])).toEqual(['cpu', 'webgpu']);
    for (const text of ['cpu,tpu', ',', '']) refusal(() => listOption({ backends: text }, 'backends', ['cpu', 'webgpu']), 'backends', text);
    expect(intOrAutoOption({}, 'tree-budget', { min: 0 })).toBe('auto');
    expect(intOrAutoOption({ 'tree-budget': 'auto' }, 'tree-budget', { min: 0 })).toBe('auto');
    expect(intOrAutoOption({ 'tree-budget': '0' }, 'tree-budget', { min: 0 })).toBe(0);
    expect(refusal(() => intOrAutoOption({ 'tree-budget': '-1' }, 'tree-budget', { min: 0 }), 'tree-budget', '-1')).toBe('--tree-budget must be auto or an integer >= 0, got "-1"');
    expect(requiredOption({ out: 'x' }, 'out', 'convert')).toBe('x');
    expect(() => requiredOption({}, 'out', 'convert')).toThrow(new UsageError('convert needs --out'));
  });

  it("parseArgs' complaints are UsageErrors", () => {
    const options = { seed: { type: 'string' }, json: { type: 'boolean' } } as const;
    expect(parseCommandArgs('generate', ['--seed', '3', '--json'], options).values).toEqual({ seed: '3', json: true });
    for (const [args, message] of [[['--frob'], /Unknown option '--frob'/], [['--seed'], /argument missing/], [['--json=1'], /does not take an argument/], [['stray'], /Unexpected argument 'stray'/]] as const) {
      expect(() => parseCommandArgs('generate', [...args], options)).toThrow(UsageError);
      expect(() => parseCommandArgs('generate', [...args], options)).toThrow(message);
    }
  });
});
