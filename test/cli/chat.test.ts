/**
 * `corolla chat` as a process: a multi-turn greedy conversation prints what the library's Chat replies, turn by turn,
 * and ends on /exit or end of input; --device is honoured, flags it does not use are refused.
 */
import { describe, expect, it } from 'vitest';
import { Chat } from '../../src/inference/chat.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { runCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';

describe('corolla chat', () => {
  it('prints, turn by turn, the replies the library gives the same conversation, and ends on /exit or end of input', async () => {
    const turns = ['Once upon a time', 'The cat sat', 'Lily was happy'];
    const sampling = { temperature: 0, maxTokens: 12 };
    const local = await LocalModel.open(STORIES_GGUF);
    const expected: string[] = [];
    const chat = new Chat(local, { system: 'Tell a story.' });
    try {
      for (const turn of turns) {
        let text = '';
        for await (const event of chat.reply(turn, sampling)) text += event.text;
        expected.push(text);
      }
    } finally {
      await chat.close();
      await local.close();
    }
    // Replies differ from turn to turn, so a chat that dropped or repeated the history would not match.
    expect(new Set(expected).size).toBe(turns.length);

    const args = ['chat', '--model', STORIES_GGUF, '--system', 'Tell a story.', '--temperature', '0', '--max-tokens', '12'];
    for (const ending of ['/exit\n', '']) {
      const result = await runCorolla(args, { stdin: turns.join('\n') + '\n\n' + ending }); // a blank line is skipped
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(expected.map((text) => `${text}\n`).join(''));
    }
  }, 120_000);

  it('passes --device on (an unknown device is refused, cpu chats)', async () => {
    const bad = await runCorolla(['chat', '--model', STORIES_GGUF, '--device', 'tpu']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--device must be cpu or cuda, got "tpu"/);

    const ok = await runCorolla(['chat', '--model', STORIES_GGUF, '--device', 'cpu', '--temperature', '0', '--max-tokens', '8'], { stdin: 'Once upon a time\n/exit\n' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().length).toBeGreaterThan(0);
  }, 60_000);

  it.each(['--prompt=hello', '--stats'])('refuses %s, which chat does not use', async (flag) => {
    const result = await runCorolla(['chat', '--model', STORIES_GGUF, flag]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`Unknown option '${flag.replace(/=.*/, '')}'`));
    expect(result.stderr).toMatch(/usage: corolla chat/);
  });
});
