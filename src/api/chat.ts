/**
 * Chat templates, runtime-neutral: a conversation turned into the one prompt text an
 * instruction-tuned model was trained on, by the model's own Jinja template, rendered with
 * Hugging Face's Jinja implementation (@huggingface/jinja, the one their JavaScript libraries
 * use), so the text is the one `apply_chat_template` gives.
 *
 * Where a model folder keeps its template:
 *   chat_template.jinja      the template as a file of its own (newer Hugging Face exports)
 *   tokenizer_config.json    "chat_template": a string, or a list of {"name", "template"}
 *                            (named templates: "default" is the chat one, others such as
 *                            "tool_use" serve other purposes)
 * and the special tokens the template writes, "bos_token" / "eos_token" of
 * tokenizer_config.json (a string or {"content": ...}).
 *
 * A model without a template (base models, the shipped one) cannot chat: the error says so
 * rather than inventing a format the model never saw.
 */
import { Template } from '@huggingface/jinja';
import { readText, type FileSource } from './source.js';
import { locate } from '../io/checkpoint.js';

export interface ChatMessage {
  /** 'system', 'user', 'assistant' (what a template accepts is up to the template) */
  role: string;
  content: string;
}

/** The variables a template is rendered with (what apply_chat_template passes). */
export interface ChatRenderOptions {
  /** the BOS token's text, which many templates write first (default '') */
  bos_token?: string;
  /** the EOS token's text, which templates write after each assistant turn (default '') */
  eos_token?: string;
  /** end with the opening of an assistant turn, the place the model's reply goes (default true) */
  add_generation_prompt?: boolean;
  /** anything else the template reads (tools, documents, unk_token, ...) */
  [variable: string]: unknown;
}

/** A template that is missing, malformed, or fails to render; the message names where it came from. */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/** A model's chat template and the special tokens it writes. */
export interface ChatTemplate {
  text: string;
  /** where the text came from, for messages: the file (and the list entry) */
  source: string;
  bosToken: string | undefined;
  eosToken: string | undefined;
}

/** the file a template may have of its own */
const TEMPLATE_FILE = 'chat_template.jinja';
const TOKENIZER_CONFIG = 'tokenizer_config.json';
/** of the list form's named templates, the one for chat */
const DEFAULT_TEMPLATE_NAME = 'default';

/**
 * Render `messages` with `template`. Every message needs a string role and content; a
 * template that does not parse, or raises while rendering (raise_exception, a bad variable),
 * is a ChatTemplateError naming `source` and the Jinja error.
 */
export function renderChat(template: string, messages: readonly ChatMessage[], opts: ChatRenderOptions = {}, source = 'chat template'): string {
  checkMessages(messages);
  let parsed: Template;
  try {
    parsed = new Template(template);
  } catch (e) {
    throw new ChatTemplateError(`${source}: the chat template does not parse: ${(e as Error).message}`);
  }
  const variables = { bos_token: '', eos_token: '', ...opts, add_generation_prompt: opts.add_generation_prompt ?? true, messages: messages.map((m) => ({ ...m })) };
  try {
    return parsed.render(variables);
  } catch (e) {
    throw new ChatTemplateError(`${source}: the chat template failed to render: ${(e as Error).message}`);
  }
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TypeError(`chat: messages must be an array of {role, content}, got ${typeof messages}`);
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new TypeError(`chat: messages[${i}] must be {role: string, content: string}, got ${JSON.stringify(m)}`);
    }
  });
}

/**
 * The chat template of a tokenizer_config.json text (undefined when it has none), with the
 * BOS / EOS texts beside it. `source` names the file in errors.
 */
export function chatTemplateOf(tokenizerConfig: string, source: string): ChatTemplate | undefined {
  const fields = configFields(tokenizerConfig, source);
  const tokens = specialTokens(fields, source);
  const value = fields.chat_template;
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return { text: value, source: `${source} chat_template`, ...tokens };
  if (!Array.isArray(value)) throw new ChatTemplateError(`${source}: chat_template must be a string or a list of {"name", "template"}, not ${JSON.stringify(value).slice(0, 80)}`);
  const named = value.map((entry: unknown, i) => {
    const e = entry as { name?: unknown; template?: unknown } | null;
    if (typeof e?.name !== 'string' || typeof e.template !== 'string') throw new ChatTemplateError(`${source}: chat_template[${i}] must be {"name": string, "template": string}`);
    return { name: e.name, template: e.template };
  });
  const chosen = named.find((t) => t.name === DEFAULT_TEMPLATE_NAME);
  if (!chosen) {
    throw new ChatTemplateError(`${source}: chat_template lists no "${DEFAULT_TEMPLATE_NAME}" template (it has ${named.map((t) => JSON.stringify(t.name)).join(', ') || 'none'})`);
  }
  return { text: chosen.template, source: `${source} chat_template "${DEFAULT_TEMPLATE_NAME}"`, ...tokens };
}

/** a tokenizer_config.json text's fields */
function configFields(tokenizerConfig: string, source: string): Record<string, unknown> {
  let config: unknown;
  try {
    config = JSON.parse(tokenizerConfig);
  } catch (e) {
    throw new ChatTemplateError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ChatTemplateError(`${source}: a tokenizer_config.json file holds a JSON object`);
  return config as Record<string, unknown>;
}

/** the BOS and EOS texts a template writes for bos_token and eos_token */
function specialTokens(fields: Record<string, unknown>, source: string): Pick<ChatTemplate, 'bosToken' | 'eosToken'> {
  return { bosToken: tokenText(fields, 'bos_token', source), eosToken: tokenText(fields, 'eos_token', source) };
}

/** a special token's text: "bos_token": "<s>" or {"content": "<s>", ...}; undefined when absent */
function tokenText(config: Record<string, unknown>, field: string, source: string): string | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  const content = typeof value === 'object' ? (value as { content?: unknown }).content : value;
  if (typeof content !== 'string') throw new ChatTemplateError(`${source}: ${field} must be a token (a string or {"content": ...}), not ${JSON.stringify(value)}`);
  return content;
}

/**
 * The chat template of the model folder `source`: chat_template.jinja when there is one
 * (with tokenizer_config.json's BOS and EOS texts), else tokenizer_config.json's
 * chat_template; undefined when it has neither.
 */
export async function findChatTemplate(source: FileSource): Promise<ChatTemplate | undefined> {
  return (await lookForChatTemplate(source)).template;
}

/** findChatTemplate, and the tokenizer_config.json text it read (undefined: none) */
async function lookForChatTemplate(source: FileSource): Promise<{ template: ChatTemplate | undefined; configText: string | undefined }> {
  const configText = await readText(source, TOKENIZER_CONFIG);
  const configSource = locate(source, TOKENIZER_CONFIG);
  const fromConfig = configText === undefined ? undefined : chatTemplateOf(configText, configSource);
  const file = await readText(source, TEMPLATE_FILE);
  if (file === undefined) return { template: fromConfig, configText };
  const tokens = configText === undefined ? { bosToken: undefined, eosToken: undefined } : specialTokens(configFields(configText, configSource), configSource);
  return { template: { text: file, source: locate(source, TEMPLATE_FILE), ...tokens }, configText };
}

/** The chat template a GGUF file holds (tokenizer.chat_template, read by ggufTokenizerJson into its tokenizer_config.json text), if any. */
export function ggufChatTemplate(gguf: { tokenizerConfigJson?: string }, source: string): ChatTemplate | undefined {
  return gguf.tokenizerConfigJson === undefined ? undefined : chatTemplateOf(gguf.tokenizerConfigJson, `${source} (tokenizer.chat_template)`);
}

/** findChatTemplate, or a ChatTemplateError saying what the folder lacks. */
export async function readChatTemplate(source: FileSource): Promise<ChatTemplate> {
  const { template, configText } = await lookForChatTemplate(source);
  if (template) return template;
  throw new ChatTemplateError(
    `${source.location.replace(/\/$/, '')}: the model has no chat_template (${configText === undefined ? `no ${TOKENIZER_CONFIG}` : `none in ${TOKENIZER_CONFIG}`}, no ${TEMPLATE_FILE}), ` +
      'so there is no conversation format it was trained on: chat needs an instruction-tuned model; give this one a plain prompt (generate without --chat)',
  );
}
