// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { describe, expect, it } from 'vitest';
import {
  applyChatTemplate,
  ChatTemplateError,
  CHATML_TEMPLATE,
  createTokenizer,
  renderChat,
} from '../../../src/model/tokenizer/index.js';
import { smolLmBpeData } from '../../support/tokenizers.js';

/** SmolLM2-Instruct's template, as its tokenizer_config.json carries it. */
const SMOLLM2_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

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
