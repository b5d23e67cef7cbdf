/**
 * `corolla chat`: an interactive conversation (inference/chat.ts). Each turn is rendered with the model's chat
 * template and only the new part of the conversation is fed to the session, so the KV cache of earlier turns is
 * reused.
 */
import * as readline from 'node:readline/promises';
import { Chat } from '../inference/chat.js';
import { DEFAULT_CHAT_CONTEXT, DEFAULT_CHAT_MAX_TOKENS } from '../inference/defaults.js';
import { modelFlags, openCliModel } from './generate.js';
import { numberOption, parse, samplingFrom, samplingUsage } from './options.js';

const usage = `usage: corolla chat [--model <path|hf-repo>] [--system TEXT] [options]

  --model M              GGUF file, Hugging Face directory, or Hub repo id (default: the embedded model)
  --tokenizer PATH       tokenizer for llama2.c checkpoints
  --system TEXT          system prompt
  --max-tokens N         tokens per reply (default ${DEFAULT_CHAT_MAX_TOKENS})
  --context N            conversation length in tokens (default ${DEFAULT_CHAT_CONTEXT})
  --threads N            onnxruntime threads (default 1)
  --device cpu|cuda      onnxruntime execution provider (default cpu)
  --kv-cache f32|f16     KV cache element type (default f32; f16 halves its memory)
  --swarm --bootstrap A  chat through a swarm
  --psk FILE             swarm key of a private swarm (with --swarm)
${samplingUsage}
Type /exit or press Ctrl-D to leave.`;

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, { ...modelFlags, system: { type: 'string' }, context: { type: 'string' } }, usage);
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 1 }) ?? DEFAULT_CHAT_MAX_TOKENS;
  const context = numberOption(values.context, 'context', { integer: true, min: 16 }) ?? DEFAULT_CHAT_CONTEXT;
  const sampling = samplingFrom(values);

  const model = await openCliModel(values);
  const chat = new Chat(model, { context, ...(values.system ? { system: values.system } : {}) });
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: Boolean(process.stdin.isTTY) });
  try {
    process.stderr.write('> ');
    // Iterating (rather than rl.question) keeps lines typed or piped while a reply is still streaming.
    for await (const line of rl) {
      if (line.trim() === '/exit') break;
      if (!line.trim()) {
        process.stderr.write('> ');
        continue;
      }
      for await (const event of chat.reply(line, { ...sampling, maxTokens })) process.stdout.write(event.text);
      process.stdout.write('\n');
      process.stderr.write('> ');
    }
  } finally {
    rl.close();
    await chat.close();
    await model.close();
  }
}
