/**
 * `npm run token` (for the LiveKit Agents Playground) run as an operator runs it: a child process
 * with its configuration in the environment. The token it prints carries the participant's
 * language, marked chosen when asked, and refuses what it cannot honour.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TokenVerifier } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { ATTR_LANGUAGE, ATTR_LANGUAGE_CHOSEN } from '../../lib/attributes.js';
import { parseDispatchHint } from '../../lib/dispatch_hint.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Bound of one CLI run (tsx compiles the script on a cold start), ms. */
const CLI_DEADLINE_MS = 30_000;
const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'cli-key', LIVEKIT_API_SECRET: 'cli-secret-of-at-least-32-characters', LIVEKIT_AGENT_NAME: 'cli-agent' };

/** Runs `npm run token -- <args>`; its exit code, stdout and stderr. */
async function token(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(`${root}/node_modules/.bin/tsx`, ['scripts/token.ts', ...args], { cwd: root, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: CLI_DEADLINE_MS }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
}

async function claimsOf(stdout: string) {
  const { token: jwt } = JSON.parse(stdout) as { token: string };
  return new TokenVerifier(env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET).verify(jwt);
}

describe('npm run token', () => {
  it('reads the rejoin window as the worker does: REJOIN_TTL_MS blank is the 60 s default, a value the worker refuses is refused by name, and so is a malformed option', async () => {
    const departure = async (args: string[], extra: Record<string, string>) => {
      const r = await token(['--identity', 'alice', '--json', ...args], extra);
      expect(r.stderr).toBe('');
      return ((await claimsOf(r.stdout)).roomConfig as { departureTimeout?: number } | undefined)?.departureTimeout;
    };
    expect(await departure([], { REJOIN_TTL_MS: '' })).toBe(60);
    expect(await departure([], { REJOIN_TTL_MS: '90000' })).toBe(90);
    expect(await departure(['--rejoin-ttl-ms', '30000'], { REJOIN_TTL_MS: '90000' })).toBe(30);
    const refused: [string[], Record<string, string>, RegExp][] = [
      [[], { REJOIN_TTL_MS: '0x10' }, /^token: REJOIN_TTL_MS must be a whole number, got "0x10"$/],
      [['--rejoin-ttl-ms', '1e5'], {}, /^token: --rejoin-ttl-ms must be a whole number, got "1e5"$/],
      [['--rejoin-ttl-ms', ''], {}, /^token: --rejoin-ttl-ms must not be empty$/],
      [['--identiy', 'bob'], {}, /^token: Unknown option '--identiy'/],
    ];
    for (const [args, extra, message] of refused) {
      const r = await token(['--identity', 'alice', ...args], extra);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim()).toMatch(message);
    }
  });

  it('with no LiveKit configured, signs for the local development server with its own key, not a key set elsewhere', async () => {
    const r = await token(['--identity', 'alice', '--json'], { LIVEKIT_URL: ' ', LIVEKIT_API_KEY: 'a-cloud-key', LIVEKIT_API_SECRET: 'a-cloud-secret-of-at-least-32-characters', PVA_ENV_FILE: '' });
    expect(r.stderr).toBe('');
    const { url, token: jwt } = JSON.parse(r.stdout) as { url: string; token: string };
    expect(url).toBe('ws://127.0.0.1:7880');
    const claims = await new TokenVerifier('devkey', 'secret-for-local-development-only-0123456789').verify(jwt);
    expect(claims.sub).toBe('alice');
  });

  it('--language-chosen marks the language as the participant\'s pick, in the token and the dispatch hint; --language alone does not', async () => {
    const picked = await token(['--identity', 'ana', '--language', 'es-mx', '--language-chosen', '--json']);
    expect(picked.code).toBe(0);
    const c = await claimsOf(picked.stdout);
    expect(c.attributes?.[ATTR_LANGUAGE]).toBe('es-MX');
    expect(c.attributes?.[ATTR_LANGUAGE_CHOSEN]).toBe('true');
    expect(parseDispatchHint(c.roomConfig?.agents?.[0]?.metadata)).toMatchObject({ identity: 'ana', language: 'es-MX', languageChosen: true });

    const plain = await claimsOf((await token(['--identity', 'ana', '--language', 'es', '--json'])).stdout);
    expect(plain.attributes?.[ATTR_LANGUAGE]).toBe('es');
    expect(plain.attributes?.[ATTR_LANGUAGE_CHOSEN]).toBeUndefined();
  }, 2 * CLI_DEADLINE_MS);

  it('refuses --language-chosen without a language, and a malformed language, printing no token', async () => {
    const alone = await token(['--identity', 'ana', '--language-chosen']);
    expect(alone).toMatchObject({ code: 2, stdout: '' });
    expect(alone.stderr).toContain('--language-chosen needs --language');
    const bad = await token(['--identity', 'ana', '--language', 'español', '--language-chosen']);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('--language must be a BCP 47 language tag');
  }, 2 * CLI_DEADLINE_MS);
});
