/**
 * `corolla chat`: an interactive conversation. Each turn is rendered with the model's chat template and only the
 * new part of the conversation is fed to the session, so the KV cache of earlier turns is reused.
 */
import * as readline from 'node:readline/promises';
import { generate } from '../engine/generate.js';
import { renderChat } from '../model/tokenizer/index.js';
import type { ChatMessage } from '../model/types.js';
import { generateFlags, openLocalBackend, openSwarmCliBackend, type InferenceBackend } from './generate.js';
import { numberOption, parse, samplingUsage, samplingFrom, UsageError } from './options.js';

const usage = `usage: corolla chat --model <path|hf-repo> [--system TEXT] [options]

  --model M              GGUF file, Hugging Face directory, or Hub repo id
  --system TEXT          system prompt
  --max-tokens N         tokens per reply (default 512)
  --context N            conversation length in tokens (default 4096)
  --threads N            onnxruntime threads (default 1)
  --swarm --bootstrap A  chat through a swarm
${samplingUsage}
Type /exit or press Ctrl-D to leave.`;

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, { ...generateFlags, system: { type: 'string' }, context: { type: 'string' } }, usage);
  if (!values.model) throw new UsageError(`--model is required\n\n${usage}`);
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 1 }) ?? 512;
  const context = numberOption(values.context, 'context', { integer: true, min: 16 }) ?? 4096;
  const threads = numberOption(values.threads, 'threads', { integer: true, min: 1 }) ?? 1;
  const sampling = samplingFrom(values);

  let backend: InferenceBackend;
  if (values.swarm) {
    if (!values.bootstrap) throw new UsageError('--swarm needs --bootstrap ADDR[,ADDR…]');
    backend = await openSwarmCliBackend({ model: values.model, tokenizerPath: values.tokenizer, bootstrap: values.bootstrap, threads });
  } else {
    backend = await openLocalBackend(values.model, { tokenizerPath: values.tokenizer, threads });
  }
  const { tokenizer } = backend;
  const messages: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
  let session = await backend.openSession(context);
  let fed: number[] = []; // ids already in the session's cache
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
      messages.push({ role: 'user', content: line });
      const ids = tokenizer.encode(renderChat(tokenizer, messages, { addGenerationPrompt: true }), { addBos: false });
      // Feed only what the cache does not hold yet; start over if the template rewrote earlier turns.
      let shared = 0;
      while (shared < fed.length && shared < ids.length && fed[shared] === ids[shared]) shared++;
      if (shared < fed.length || ids.length + maxTokens > context) {
        await session.close();
        session = await backend.openSession(context);
        shared = 0;
        fed = [];
      }
      fed = fed.slice(0, shared);
      const current = session;
      const tracked = { next: (next: readonly number[]) => (fed.push(...next), current.next(next)), close: () => current.close() };
      let text = '';
      for await (const event of generate(tracked, tokenizer, ids.slice(shared), { ...sampling, maxTokens })) {
        text += event.text;
        process.stdout.write(event.text);
      }
      process.stdout.write('\n');
      messages.push({ role: 'assistant', content: text });
      process.stderr.write('> ');
    }
  } finally {
    rl.close();
    await session.close();
    await backend.close();
  }
}
