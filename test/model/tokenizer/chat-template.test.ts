// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { describe, expect, it } from 'vitest';
import {
  applyChatTemplate,
  ChatTemplateError,
  CHATML_TEMPLATE,
  createTokenizer,
  renderChat,
} from '../../../src/model/tokenizer/index.js';
import { readFileSync } from 'node:fs';
import type { ChatMessage } from '../../../src/model/types.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { readHfTokenizer } from '../../../src/model/hf-source.js';
import { referenceHfData, referenceTokenizerJsonText } from '../../fixtures/tokenizers.js';
import { tempDir } from '../../support/files.js';
import { smolLmBpeData } from '../../support/tokenizers.js';

const TEMPLATES = new URL('../../fixtures/chat-templates/', import.meta.url);
const template = (name: string): string => readFileSync(new URL(`${name}.jinja`, TEMPLATES), 'utf8');

/** Rendered by render-reference.py with jinja2 configured as transformers' apply_chat_template configures it. */
const REFERENCE = JSON.parse(readFileSync(new URL('reference.json', TEMPLATES), 'utf8')) as {
  variables: Record<string, unknown>;
  conversations: Record<string, ChatMessage[]>;
  models: Record<string, { special: { bos_token: string | null; eos_token: string }; renders: Record<string, string> }>;
};

/** SmolLM2-Instruct's template, as its GGUF / tokenizer_config.json carries it. */
const SMOLLM2_TEMPLATE = template('smollm2-instruct');

/** Parsed from a tokenizer_config.json-like string, as a loader would get it. */
const TOKENIZER_CONFIG = JSON.parse(JSON.stringify({ chat_template: SMOLLM2_TEMPLATE, eos_token: '<|im_end|>' })) as {
  chat_template: string;
};

describe('applyChatTemplate', () => {
  it("renders SmolLM2's template with the default system prompt and a generation prompt", () => {
    const out = applyChatTemplate(TOKENIZER_CONFIG.chat_template, [{ role: 'user', content: 'What is 2+2?' }], {
      addGenerationPrompt: true,
    });
    expect(out).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it("keeps the caller's system prompt and omits the generation prompt when not asked", () => {
    const out = applyChatTemplate(
      SMOLLM2_TEMPLATE,
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
      ],
      { addGenerationPrompt: false },
    );
    expect(out).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n',
    );
  });

  it('passes bos_token and eos_token', () => {
    const template = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}{{ eos_token }}";
    expect(
      applyChatTemplate(template, [{ role: 'user', content: 'x' }], { addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>' }),
    ).toBe('<s>[INST] x [/INST]</s>');
  });

  it('turns raise_exception into a ChatTemplateError marked raised', () => {
    const template =
      "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ m['content'] }}{% endfor %}";
    let caught: unknown;
    try {
      applyChatTemplate(template, [{ role: 'assistant', content: 'x' }], { addGenerationPrompt: true });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ChatTemplateError);
    expect((caught as ChatTemplateError).raised).toBe(true);
    expect((caught as ChatTemplateError).code).toBe('CHAT_TEMPLATE_RAISED');
    expect((caught as Error).message).toContain('Conversation roles must alternate');
    expect(applyChatTemplate(template, [{ role: 'user', content: 'ok' }], { addGenerationPrompt: true })).toBe('ok');
  });

  it('reports templates that do not parse or fail to render as ChatTemplateError', () => {
    for (const template of ['{% for m in messages %}{{ m.content', '{{ messages[0].content.nope() }}']) {
      let caught: unknown;
      try {
        applyChatTemplate(template, [{ role: 'user', content: 'x' }], { addGenerationPrompt: true });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ChatTemplateError);
      expect((caught as ChatTemplateError).code).toBe('CHAT_TEMPLATE_FAILED');
      expect((caught as ChatTemplateError).raised).toBe(false);
    }
  });
});

describe('renderChat', () => {
  it('falls back to ChatML for a tokenizer without a template', () => {
    const tok = createTokenizer(smolLmBpeData());
    expect(tok.chatTemplate).toBeUndefined();
    const messages = [{ role: 'user', content: 'Hi' }];
    const out = renderChat(tok, messages, { addGenerationPrompt: true });
    expect(out).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(out).toBe(applyChatTemplate(CHATML_TEMPLATE, messages, { addGenerationPrompt: true }));
    // The rendered prompt tokenizes with its markers as single special tokens.
    expect(tok.encode(out).filter((id) => id === 1 || id === 2)).toEqual([1, 2, 1]);
  });

  it("uses the tokenizer's own template when it has one", () => {
    const tok = createTokenizer({ ...smolLmBpeData(), chatTemplate: SMOLLM2_TEMPLATE });
    expect(renderChat(tok, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n',
    );
  });
});

describe("real models' templates render what Hugging Face renders", () => {
  const models = Object.entries(REFERENCE.models);

  it('covers Llama 2, Llama 3, 3.1 and 3.2, Qwen2.5, Mistral v0.3 and SmolLM2', () => {
    expect(models.map(([name]) => name).sort()).toEqual(
      ['llama-2-chat', 'llama-3-instruct', 'llama-3.1-instruct', 'llama-3.2-instruct', 'mistral-7b-instruct-v0.3', 'qwen2.5-instruct', 'smollm2-instruct'],
    );
  });

  describe.each(models)('%s', (name, { special, renders }) => {
    it.each(Object.entries(renders))('%s', (key, expected) => {
      const [conversation, mode] = key.split('/') as [string, string];
      const out = applyChatTemplate(template(name), REFERENCE.conversations[conversation]!, {
        addGenerationPrompt: mode === 'generate',
        ...(special.bos_token !== null ? { bosToken: special.bos_token } : {}),
        eosToken: special.eos_token,
        variables: REFERENCE.variables,
      });
      expect(out).toBe(expected);
    });
  });

  // llama.cpp tests/test-chat-template.cpp: its conversation and expected output for these two templates.
  const LLAMA_CPP_CONVERSATION = [
    { role: 'system', content: 'You are a helpful assistant' },
    { role: 'user', content: 'Hello' },
    { role: 'assistant', content: 'Hi there' },
    { role: 'user', content: 'Who are you' },
    { role: 'assistant', content: '   I am an assistant   ' },
    { role: 'user', content: 'Another question' },
  ];
  it.each([
    [
      'teknium/OpenHermes-2.5-Mistral-7B (ChatML)',
      CHATML_TEMPLATE,
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n',
    ],
    [
      'Llama-3',
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
      '<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    ],
  ])("renders llama.cpp's expected output for %s", (_name, source, expected) => {
    expect(applyChatTemplate(source, LLAMA_CPP_CONVERSATION, { addGenerationPrompt: true })).toBe(expected);
  });

  it("renders with the tokenizer's own BOS/EOS strings, and the markers encode to single special ids", () => {
    const llama = createTokenizer(referenceHfData('llama-3', template('llama-3.1-instruct')));
    const conversation = REFERENCE.conversations['system']!;
    const rendered = renderChat(llama, conversation, { addGenerationPrompt: true, variables: REFERENCE.variables });
    expect(rendered).toBe(REFERENCE.models['llama-3.1-instruct']!.renders['system/generate']);
    const ids = llama.encode(rendered, { addBos: false });
    // <|begin_of_text|> once; <|start_header_id|> and <|end_header_id|> once per turn and the generation prompt.
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids.filter((id) => id === 128006)).toHaveLength(5);
    expect(ids.filter((id) => id === 128007)).toHaveLength(5);
    expect(ids.filter((id) => id === 128009)).toHaveLength(4);

    const qwen = createTokenizer(referenceHfData('qwen2', template('qwen2.5-instruct')));
    const chatml = renderChat(qwen, conversation, { addGenerationPrompt: true });
    expect(chatml).toBe(REFERENCE.models['qwen2.5-instruct']!.renders['system/generate']);
    const qwenIds = qwen.encode(chatml);
    expect(qwenIds.filter((id) => id === 151644)).toHaveLength(5); // <|im_start|>
    expect(qwenIds.filter((id) => id === 151645)).toHaveLength(4); // <|im_end|>
  });

  it('a Hub folder: the template and the BOS/EOS strings come from tokenizer_config.json, as transformers reads them', () => {
    const dir = tempDir('corolla-llama3-folder-');
    writeFileSync(path.join(dir, 'tokenizer.json'), referenceTokenizerJsonText('llama-3'));
    const config = { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: template('llama-3.1-instruct') };
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const data = readHfTokenizer(dir)!;
    expect(data.special).toMatchObject({ bos: 128000, eos: [128009] });
    const tokenizer = createTokenizer(data);
    for (const [key, expected] of Object.entries(REFERENCE.models['llama-3.1-instruct']!.renders)) {
      const [conversation, mode] = key.split('/') as [string, string];
      const out = renderChat(tokenizer, REFERENCE.conversations[conversation]!, { addGenerationPrompt: mode === 'generate', variables: REFERENCE.variables });
      expect(out, key).toBe(expected);
    }
  });
});
