/** `corolla chat`: --device is honoured, flags it does not use are refused. */
import { describe, expect, it } from 'vitest';
import { runCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';

describe('corolla chat', () => {
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
