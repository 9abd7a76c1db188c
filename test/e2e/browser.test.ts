/**
 * The web client in real headless Chromium (Debian `chromium`, driven by playwright-core with
 * `executablePath`; never a downloaded browser) against the real token service, the real
 * livekit-server of the global setup, real Redis and a real worker process.
 *
 * Every test opens its own browser context (its own `localStorage`: a new visitor) and polls
 * for what a user would see, with deadlines.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RoomServiceClient } from 'livekit-server-sdk';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { renderGreeting } from '../../lib/session/greeting.js';
import { idleCheckInText, idleGoodbyeText } from '../../lib/session/idle.js';
import { encodeKeyPart } from '../../lib/store/keys.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { RedisDeviceStore } from '../../web/server/device_store.js';
import type { IdentityExport } from '../../lib/identity_export.js';
import { buildClient, REPO_ROOT } from '../../web/server/build_client.js';
import { startTokenService, type TokenService } from '../../web/server/service.js';
import { randomPrefix } from '../support/env.js';
import { AGENT_WAIT_MS, literally } from '../support/participant.js';
import { freeTcpPort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startWorker, type WorkerProcess } from '../support/worker.js';

const livekit = { url: inject('livekitUrl'), apiKey: inject('livekitApiKey'), apiSecret: inject('livekitApiSecret') };
const redisUrl = inject('redisUrl');
const agentName = `e2e-web-${Math.random().toString(36).slice(2, 8)}`;
const prefix = randomPrefix('web-e2e');
const SCREENSHOT = join(REPO_ROOT, 'docs', 'web-client.png');
/** Chromium flags: headless on a build machine, nothing phoning home. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu', '--no-first-run'];

let worker: WorkerProcess;
let service: TokenService;
let browser: Browser;
let redis: Redis;
const contexts: BrowserContext[] = [];
const pageLogs = new Map<Page, string[]>();

beforeAll(async () => {
  // Fallback for a direct `vitest run` (scripts/test.sh already ran it): installs Debian chromium if missing.
  const executablePath = execFileSync('bash', ['scripts/ensure_chromium.sh'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop() as string;
  const built = await buildClient();
  console.log(`[figure] page bundle: ${Math.round(built.bytes / 1024)} KiB in ${built.ms} ms`);
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  [worker, service, browser] = await Promise.all([
    startWorker({
      env: {
        LIVEKIT_URL: livekit.url,
        LIVEKIT_API_KEY: livekit.apiKey,
        LIVEKIT_API_SECRET: livekit.apiSecret,
        LIVEKIT_AGENT_NAME: agentName,
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: prefix,
      },
    }),
    startTokenService({
      livekitUrl: livekit.url,
      apiKey: livekit.apiKey,
      apiSecret: livekit.apiSecret,
      port: 0,
      agentName,
      redisUrl,
      redisKeyPrefix: prefix,
    }),
    chromium.launch({ executablePath, args: CHROMIUM_ARGS }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled(contexts.map((c) => c.close()));
  await browser?.close();
  await service?.close();
  await worker?.stop();
  if (redis) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', '500');
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
});

afterEach(async (ctx) => {
  const failed = ctx.task.result?.state === 'fail';
  if (failed) for (const [, lines] of pageLogs) console.log(`--- page log ---\n${lines.slice(-60).join('\n')}`);
  pageLogs.clear();
  // Close this test's visitors: their pages leave their rooms and the agent jobs end.
  await Promise.allSettled(contexts.splice(0).map((c) => c.close()));
  if (!failed) return;
  const file = join(tmpdir(), `pva-web-e2e-worker-${process.pid}.log`);
  writeFileSync(file, worker.output());
  console.log(`--- worker output: ${file} ---`);
});

// ---------------------------------------------------------------- helpers

/** A new visitor: a fresh browser context (empty localStorage, the browser in `locale`) with the page open. */
async function newVisitor(baseUrl = service.url, locale = 'en-US'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale });
  contexts.push(context);
  const page = await context.newPage();
  const log: string[] = [];
  pageLogs.set(page, log);
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await open(page, baseUrl);
  return page;
}

async function open(page: Page, url = service.url): Promise<void> {
  await page.goto(url);
  await waitFor('page ready', () => page.evaluate(() => document.body.dataset.ready === 'true'), { timeoutMs: 15_000 });
}

interface Line {
  role: string;
  text: string;
}

function lines(page: Page): Promise<Line[]> {
  return page.$$eval('#transcript li', (els) => els.map((el) => ({ role: (el as HTMLElement).dataset.role ?? '', text: el.textContent ?? '' })));
}

async function waitForLine(page: Page, role: string, re: RegExp, { after = 0, timeoutMs = AGENT_WAIT_MS } = {}): Promise<Line> {
  return waitFor(`a ${role} line matching ${re}`, async () => (await lines(page)).slice(after).find((l) => l.role === role && re.test(l.text)), { timeoutMs });
}

const text = (page: Page, id: string): Promise<string> => page.evaluate((i) => document.getElementById(i)?.textContent ?? '', id);
const data = (page: Page, id: string, key: string): Promise<string> => page.evaluate(([i, k]) => document.getElementById(i as string)?.dataset[k as string] ?? '', [id, key]);

async function waitForState(page: Page, state: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`session state ${state}`, async () => (await text(page, 'session-state')) === state, { timeoutMs });
}

/** Waits for the first-time greeting, which must be the one written in `language`. */
async function greetedIn(page: Page, language: string, first: RegExp): Promise<void> {
  const greeting = await waitForLine(page, 'agent', first);
  expect(greeting.text).toBe(renderGreeting({ kind: 'first_time' }, null, language));
}

/** Waits for the session panel to show the conversation's language `tag`, as `text`. */
async function languageShown(page: Page, tag: string, text: string): Promise<void> {
  await waitFor('the language to be shown', async () => (await data(page, 'language', 'tag')) === tag, { timeoutMs: 30_000 });
  expect(await page.textContent('#language')).toBe(text);
}

async function connect(page: Page): Promise<void> {
  await page.click('#connect');
  await waitForState(page, 'Connected');
}

async function say(page: Page, message: string): Promise<void> {
  await page.fill('#chat-input', message);
  await page.click('#chat-send');
}

async function credentials(page: Page): Promise<{ identity: string; deviceSecret: string }> {
  const raw = await page.evaluate(() => localStorage.getItem('pva.device'));
  const d = JSON.parse(raw ?? 'null') as { identity: string; deviceSecret: string } | null;
  if (d === null) throw new Error('no device credential in localStorage');
  return { identity: d.identity, deviceSecret: d.deviceSecret };
}

async function sessionKeysOf(identity: string): Promise<string[]> {
  const enc = encodeKeyPart(identity);
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', '1000');
    cursor = next;
    found.push(...keys.filter((k) => k.includes(`.${enc}}`)));
  } while (cursor !== '0');
  return found;
}

/** The first-time greeting as the worker renders it (lib/session/greeting.ts). */
const FIRST_TIME = literally(renderGreeting({ kind: 'first_time' }) ?? '');

// ---------------------------------------------------------------- tests

describe('web client in headless Chromium', () => {
  it('first visit: a new identity, the first-time greeting, and a reply to chat (screenshot)', async () => {
    const page = await newVisitor();
    const { identity } = await credentials(page);
    expect(identity).toMatch(/^web-/);
    expect(await text(page, 'identity')).toBe(identity);
    expect(await text(page, 'session-state')).toBe('Disconnected');
    // Something in the context panel for the screenshot (set before connecting: queued).
    await page.fill('#ctx-name', 'Station');
    await page.fill('#ctx-value', 'Bay 3');
    await page.click('#ctx-set');

    const t0 = Date.now();
    await connect(page);
    const greeting = await waitForLine(page, 'agent', FIRST_TIME);
    console.log(`[figure] browser connect click → first greeting visible: ${Date.now() - t0} ms`);
    expect(greeting.text).toBe(renderGreeting({ kind: 'first_time' }));

    const before = (await lines(page)).length;
    await say(page, 'What is the capital of France?');
    await waitForLine(page, 'user', /capital of France/, { after: before });
    const reply = await waitForLine(page, 'agent', /offline mode/i, { after: before });
    expect(reply.text).toContain('What is the capital of France?');

    mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('a visitor whose browser is in French is greeted in French (the page sends navigator.language)', async () => {
    const page = await newVisitor(service.url, 'fr-FR');
    await connect(page);
    await greetedIn(page, 'fr-FR', /Bonjour/);
    // The page shows the language the agent speaks with them, named in that language.
    await languageShown(page, 'fr-FR', 'français (France)');
    expect(await data(page, 'language', 'heard')).toBe('false');
    expect(await data(page, 'language', 'chosen')).toBe('false');
  });

  it('a visitor whose browser is in English picks Español from the language menu: greeted in Spanish, shown as their choice; back in the room after picking Français, welcomed back in French; the pick is kept across reloads', async () => {
    const page = await newVisitor(service.url, 'en-US');
    expect(await page.textContent('#language-choice option[value=""]')).toBe("Browser's (American English)");
    await page.selectOption('#language-choice', 'es');
    await connect(page);
    await greetedIn(page, 'es', /Hola/);
    await languageShown(page, 'es', 'español (your choice)');
    expect(await data(page, 'language', 'chosen')).toBe('true');
    expect(await page.isDisabled('#language-choice')).toBe(true);
    const room = await text(page, 'room');

    // They disconnect, pick Français and come back to the same room: welcomed back in French.
    await page.click('#disconnect');
    await waitForState(page, 'Disconnected');
    await page.selectOption('#language-choice', 'fr');
    const n = (await lines(page)).length;
    await connect(page);
    expect(await text(page, 'room')).toBe(room);
    const welcome = await waitForLine(page, 'agent', /./, { after: n, timeoutMs: 30_000 });
    expect(welcome.text).toBe(renderGreeting({ kind: 'welcome_back_brief', agoMs: 0 }, null, 'fr'));
    await languageShown(page, 'fr', 'français (your choice)');

    // A reload keeps the pick.
    await page.reload();
    expect(await page.inputValue('#language-choice')).toBe('fr');
  });

  it('first visit: the agent reports a first_time greeting on pva.session', async () => {
    const page = await newVisitor();
    await connect(page);
    await waitFor('greeting kind from pva.session', async () => (await data(page, 'greeting-kind', 'kind')) !== '', { timeoutMs: 30_000 });
    expect(await data(page, 'greeting-kind', 'kind')).toBe('first_time');
    expect(await data(page, 'decision', 'kind')).toBe('fresh');
  });

  it('reload: the same identity, the earlier transcript shown again, the same room rejoined', async () => {
    const page = await newVisitor();
    const before = await credentials(page);
    await connect(page);
    await waitForLine(page, 'agent', FIRST_TIME);
    await say(page, 'Remember the blue door.');
    await waitForLine(page, 'agent', /blue door/);
    const room = await text(page, 'room');
    const shown = await lines(page);

    await page.reload();
    await waitFor('page ready', () => page.evaluate(() => document.body.dataset.ready === 'true'), { timeoutMs: 15_000 });
    expect(await credentials(page)).toEqual(before);
    expect(await text(page, 'identity')).toBe(before.identity);
    // The earlier transcript is back, in order, before anything new was said.
    const restored = await lines(page);
    expect(restored.slice(0, shown.length)).toEqual(shown);
    // A reload during a conversation rejoins the same room at once (within the rejoin TTL).
    await waitForState(page, 'Connected');
    expect(await text(page, 'room')).toBe(room);
  });

  it('reload: a welcome-back greeting, not a second first-time greeting', async () => {
    const page = await newVisitor();
    await connect(page);
    await waitForLine(page, 'agent', FIRST_TIME);
    await say(page, 'My name is Ada.');
    await waitForLine(page, 'agent', /Ada/);
    const n = (await lines(page)).length;

    await page.reload();
    await waitFor('page ready', () => page.evaluate(() => document.body.dataset.ready === 'true'), { timeoutMs: 15_000 });
    await waitForState(page, 'Connected');
    const welcome = await waitForLine(page, 'agent', /./, { after: n, timeoutMs: 30_000 });
    expect(welcome.text).not.toMatch(FIRST_TIME);
    expect(['welcome_back_brief', 'returning']).toContain(await data(page, 'greeting-kind', 'kind'));
    expect(await data(page, 'agent-session', 'state')).toBe('Connected');
  });

  it('context set before connecting reaches the agent and is acknowledged', async () => {
    const page = await newVisitor();
    await page.fill('#ctx-name', 'Station');
    await page.fill('#ctx-value', 'Bay 3');
    await page.click('#ctx-set');
    await page.fill('#ctx-event', 'Alarm raised at Bay 7');
    await page.click('#ctx-add-event');
    expect(await data(page, 'ctx-status', 'active')).toBe('false');
    expect(await text(page, 'ctx-text')).toBe('Station is Bay 3\nAlarm raised at Bay 7');

    await connect(page);
    // hello → welcome → the queue flushes as one sync → ack.
    await waitFor('the agent to welcome the context publisher', async () => /welcome/.test(await text(page, 'ctx-log')), { timeoutMs: 30_000 });
    await waitFor('the flushed context to be acknowledged', async () => (await data(page, 'ctx-last-ack', 'rev')) !== '' && (await data(page, 'ctx-unacked', 'count')) === '0', {
      timeoutMs: 15_000,
    });
    expect(await data(page, 'ctx-status', 'active')).toBe('true');
    // Later ops go out at once and are acknowledged too.
    const ackedBefore = Number(await data(page, 'ctx-last-ack', 'rev'));
    await page.fill('#ctx-value', 'Bay 7');
    await page.click('#ctx-set');
    await waitFor('the update to be acknowledged', async () => Number(await data(page, 'ctx-last-ack', 'rev')) > ackedBefore, { timeoutMs: 15_000 });
    expect(await text(page, 'ctx-log')).not.toMatch(/rejected/);
    // Out of the call, the panel no longer says the context goes out at once.
    await page.click('#disconnect');
    await waitForState(page, 'Disconnected');
    expect(await data(page, 'ctx-status', 'active')).toBe('false');
  });

  it('the dynamic context is visible in what the agent answers', async () => {
    const page = await newVisitor();
    await page.fill('#ctx-name', 'Station');
    await page.fill('#ctx-value', 'Bay 3');
    await page.click('#ctx-set');
    await connect(page);
    await waitForLine(page, 'agent', FIRST_TIME);
    await waitFor('context acknowledged', async () => (await data(page, 'ctx-unacked', 'count')) === '0' && (await data(page, 'ctx-last-ack', 'rev')) !== '', { timeoutMs: 15_000 });
    const n = (await lines(page)).length;
    await say(page, 'Which station am I at?');
    const reply = await waitForLine(page, 'agent', /offline mode|Bay/i, { after: n });
    expect(reply.text).toContain('Bay 3');
  });

  it('"Download my data": a JSON file with the conversation as the agent keeps it, turns included', async () => {
    const page = await newVisitor();
    await connect(page);
    const greeting = await waitForLine(page, 'agent', FIRST_TIME);
    await say(page, 'My parcel number is 7731.');
    await waitForLine(page, 'agent', /parcel number is 7731/);
    const { identity } = await credentials(page);
    // Every turn is written as it is said: wait until the reply is stored, as the export reads the store.
    const store = new RedisSessionStore({ client: redis, prefix });
    await waitFor('the reply to be stored', async () => {
      const r = await store.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.history.turns.some((t) => t.role === 'assistant' && t.text.includes('7731'));
    }, { timeoutMs: 15_000 });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    expect(download.suggestedFilename()).toBe(`my-data-${identity}.json`);
    const exported = JSON.parse(readFileSync((await download.path()) as string, 'utf8')) as IdentityExport;
    expect(exported.identity).toBe(identity);
    const texts = exported.agents.find((a) => a.agentName === agentName)?.current?.history.turns.map((t) => t.text) ?? [];
    expect(texts[0]).toBe(greeting.text);
    expect(texts).toContain('My parcel number is 7731.');
    await waitFor('the notice', async () => /Downloaded what is stored about you \(1 agent\)/.test(await text(page, 'notice')), { timeoutMs: 5_000 });
  });

  it('"Forget me": the identity and its sessions are erased, the next visit is first-time', async () => {
    const page = await newVisitor();
    const old = await credentials(page);
    await connect(page);
    await waitForLine(page, 'agent', FIRST_TIME);
    await say(page, 'Please remember my locker is 42.');
    await waitForLine(page, 'agent', /locker is 42/);
    const room = await text(page, 'room');
    const rooms = new RoomServiceClient(livekit.url, livekit.apiKey, livekit.apiSecret);
    expect((await rooms.listRooms([room])).map((r) => r.name)).toEqual([room]);

    await page.click('#forget');
    await waitFor('the forget to finish', async () => /Forgotten/.test(await text(page, 'notice')), { timeoutMs: 20_000 });
    // The service closed the room on livekit-server: no agent stays in it with the conversation.
    await waitFor('the room to be closed', async () => (await rooms.listRooms([room])).length === 0, { timeoutMs: 15_000 });
    expect(await text(page, 'session-state')).toBe('Disconnected');
    expect(await lines(page)).toEqual([]);
    expect(await page.evaluate(() => localStorage.getItem('pva.device'))).toBeNull();
    // The old credential is dead and nothing of the identity is left in the store.
    const refused = await fetch(`${service.url}/api/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(old) });
    expect(refused.status).toBe(403);
    await waitFor('no stored session keys of the forgotten identity', async () => (await sessionKeysOf(old.identity)).length === 0, { timeoutMs: 15_000 });

    // The next visit (a reload of the same browser) is a new visitor.
    await open(page);
    const fresh = await credentials(page);
    expect(fresh.identity).not.toBe(old.identity);
    expect(await lines(page)).toEqual([]);
    await connect(page);
    const greeting = await waitForLine(page, 'agent', /./);
    expect(greeting.text).toBe(renderGreeting({ kind: 'first_time' }));
    await waitFor('greeting kind of the new visit', async () => (await data(page, 'greeting-kind', 'kind')) !== '', { timeoutMs: 15_000 });
    expect(await data(page, 'greeting-kind', 'kind')).toBe('first_time');
  });

  it('two tabs of one browser: "Forget me" in one, and the other, closed afterwards, writes nothing of the forgotten identity back; connecting there then gives the browser one new identity, which the first tab follows', async () => {
    const first = await newVisitor();
    const context = first.context();
    const second = await context.newPage();
    await open(second);
    const shared = await credentials(first);
    expect((await credentials(second)).identity).toBe(shared.identity);
    await connect(first);
    await waitForLine(first, 'agent', FIRST_TIME);
    await say(first, 'My badge number is 7788.');
    await waitForLine(first, 'agent', /7788/);
    await first.fill('#ctx-name', 'Badge');
    await first.fill('#ctx-value', '7788');
    await first.click('#ctx-set');
    expect(await text(first, 'ctx-text')).toBe('Badge is 7788');

    await second.click('#forget');
    await waitFor('the forget to finish', async () => /Forgotten/.test(await text(second, 'notice')), { timeoutMs: 20_000 });
    await waitFor('the first tab to let the identity go', async () => (await text(first, 'identity')) !== shared.identity, { timeoutMs: 10_000 });
    // With it, its call and everything it held for it: nothing of it goes into another conversation.
    await waitForState(first, 'Disconnected', 10_000);
    expect(await text(first, 'ctx-text')).toBe('');
    // (told so by this page, or by the room closing first: the agent dropped the erased conversation)
    expect(await text(first, 'notice')).toMatch(/the call ended/i);
    // pagehide: the page saves what it shows. close() with runBeforeUnload does not wait for the
    // page to be gone: the 'close' event does, so its handlers have run before storage is read.
    const closed = first.waitForEvent('close');
    await first.close({ runBeforeUnload: true });
    await closed;
    const stored = await second.evaluate(() => [localStorage.getItem('pva.device'), localStorage.getItem('pva.transcript'), localStorage.getItem('pva.last_room')]);
    expect(stored).toEqual([null, null, null]);

    // A third tab connects: one new identity for the browser; an open tab follows it.
    const third = await context.newPage();
    await open(third);
    await connect(third);
    const renewed = await credentials(third);
    expect(renewed.identity).not.toBe(shared.identity);
    await waitFor('the open tab to follow the new identity', async () => (await text(second, 'identity')) === renewed.identity, { timeoutMs: 10_000 });
  });

  it('a second tab opened during a call does not join it (one identity, one connection: it would push the first out); the first stays in its call', async () => {
    const first = await newVisitor();
    await connect(first);
    await waitForLine(first, 'agent', FIRST_TIME);
    const second = await first.context().newPage();
    await open(second);
    // Ready: the page has decided whether to rejoin by itself (only the tab that was in the call does).
    expect(await text(second, 'session-state')).toBe('Disconnected');
    expect(await text(second, 'room')).toBe(await text(first, 'room')); // Connect there would rejoin it
    await say(first, 'Are you still there?');
    await waitForLine(first, 'agent', /still there/);
    expect(await text(first, 'session-state')).toBe('Connected');
    expect(await text(first, 'error-message')).toBe('');
  });

  it('the conversation goes on in another tab (a new room of the identity): the first tab leaves its call, told so, instead of calling an agent back; the new tab is welcomed back', async () => {
    const first = await newVisitor();
    // Opened before the call: it knows no room, so its Connect opens a second one.
    const second = await first.context().newPage();
    await open(second);
    await connect(first);
    await waitForLine(first, 'agent', FIRST_TIME);
    await say(first, 'My locker is number 12.');
    await waitForLine(first, 'agent', /locker/);
    await connect(second);
    expect(await text(second, 'room')).not.toBe(await text(first, 'room'));
    // Gone from the call (an agent asked for there would take the conversation back, and so on).
    await waitForState(first, 'Disconnected');
    expect(await text(first, 'notice')).toMatch(/continued in another window.* Press Connect to continue it here\./);
    // Live until a moment ago: a brief welcome back, not silence and not a new visit.
    await waitFor('the greeting kind', async () => (await data(second, 'greeting-kind', 'kind')) !== '', { timeoutMs: 30_000 });
    expect(await data(second, 'greeting-kind', 'kind')).toBe('welcome_back_brief');
    expect(await data(second, 'decision', 'kind')).toBe('resume');
    expect(await text(second, 'session-state')).toBe('Connected');
  });

  it('Connect clicked while the page is still starting: one identity is issued, and the page shows the one it talks as', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    const page = await context.newPage();
    let identityRequests = 0;
    let openConfig = () => {};
    const configGate = new Promise<void>((resolve) => (openConfig = resolve));
    let openIdentity = () => {};
    const identityGate = new Promise<void>((resolve) => (openIdentity = resolve));
    // The page's settings come late, and say AlwaysResume is not offered (a sign, on the page, that they arrived).
    await page.route('**/api/config', async (route) => {
      await configGate;
      await route.fulfill({ contentType: 'application/json', body: JSON.stringify({ rejoinTtlMs: 60_000, policies: ['ResumeIfPossible', 'AlwaysFresh'], defaultPolicy: null }) });
    });
    await page.route('**/api/identity', async (route) => {
      identityRequests++;
      await identityGate;
      await route.continue();
    });
    await page.goto(service.url);
    await page.click('#connect'); // before the page is ready: the attempt asks for an identity
    await waitFor('the attempt to ask for an identity', () => identityRequests === 1);
    openConfig(); // the start-up goes on while that identity is still on its way
    await waitFor('the settings to arrive', () => page.evaluate(() => (document.querySelector('#policy option[value="AlwaysResume"]') as HTMLOptionElement).disabled));
    openIdentity();
    await waitForState(page, 'Connected');
    await waitFor('page ready', () => page.evaluate(() => document.body.dataset.ready === 'true'));
    expect(identityRequests).toBe(1);
    const kept = await credentials(page);
    expect(await text(page, 'identity')).toBe(kept.identity);
    await waitForLine(page, 'agent', FIRST_TIME);
  });

  it("a token request with a forged or someone else's identity is refused (403); a page holding one starts as a new visitor, never as that identity", async () => {
    const alice = await newVisitor();
    const mallory = await newVisitor();
    const a = await credentials(alice);
    const m = await credentials(mallory);
    const ask = (page: Page, body: unknown) =>
      page.evaluate(async (b) => {
        const r = await fetch('/api/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
        return { status: r.status, body: (await r.json()) as { reason?: string; token?: string } };
      }, body);

    expect(await ask(mallory, { identity: 'alice', deviceSecret: m.deviceSecret })).toMatchObject({ status: 403, body: { reason: 'invalid_credentials' } });
    expect(await ask(mallory, { identity: a.identity, deviceSecret: m.deviceSecret })).toMatchObject({ status: 403, body: { reason: 'invalid_credentials' } });
    expect(await ask(mallory, { identity: a.identity, deviceSecret: 'x'.repeat(43) })).toMatchObject({ status: 403, body: { reason: 'invalid_credentials' } });
    expect((await ask(mallory, m)).status).toBe(200);
    // Alice's room is hers only.
    const aliceToken = await ask(alice, a);
    expect(aliceToken.status).toBe(200);
    const room = (aliceToken.body as { room: string }).room;
    expect(await ask(mallory, { ...m, room })).toMatchObject({ status: 403, body: { reason: 'room_not_issued' } });

    // A page whose stored identity was swapped for Alice's cannot connect as Alice: the service
    // refuses it, and the page starts over as a new visitor, with an identity of its own.
    await mallory.evaluate((id) => {
      const d = JSON.parse(localStorage.getItem('pva.device') ?? '{}') as Record<string, unknown>;
      localStorage.setItem('pva.device', JSON.stringify({ ...d, identity: id }));
    }, a.identity);
    await open(mallory);
    await connect(mallory);
    const now = await credentials(mallory);
    expect([a.identity, m.identity]).not.toContain(now.identity);
    expect(await waitForLine(mallory, 'agent', /./)).toMatchObject({ text: expect.stringMatching(FIRST_TIME) });
  });

  it('a returning visitor whose credential lapsed (a long absence) or was erased by an operator starts as a new visitor, told so, instead of an error', async () => {
    const page = await newVisitor();
    await connect(page);
    await waitForLine(page, 'agent', FIRST_TIME);
    const old = await credentials(page);
    await page.click('#disconnect');
    await waitForState(page, 'Disconnected');
    // The service forgets the device, as when WEB_DEVICE_TTL_MS passes or `npm run sessions -- forget` runs.
    const devices = new RedisDeviceStore({ client: redis, prefix });
    await devices.delete(old.identity);

    await open(page);
    await connect(page);
    expect((await credentials(page)).identity).not.toBe(old.identity);
    await waitFor('the notice', async () => /no longer known here: you start as a new visitor/.test(await text(page, 'notice')), { timeoutMs: 10_000 });
    await waitFor('greeting kind of the new visit', async () => (await data(page, 'greeting-kind', 'kind')) !== '', { timeoutMs: 15_000 });
    expect(await data(page, 'greeting-kind', 'kind')).toBe('first_time');
  });

  it('the agent ends a silent call: the page shows its goodbye, goes to Disconnected without trying to reconnect, and Connect calls again and resumes', async () => {
    // A worker and token service of their own: a 2 s idle rule would end the other tests' calls.
    const idleAgent = `${agentName}-idle`;
    const [idleWorker, idleService] = await Promise.all([
      startWorker({
        env: {
          LIVEKIT_URL: livekit.url,
          LIVEKIT_API_KEY: livekit.apiKey,
          LIVEKIT_API_SECRET: livekit.apiSecret,
          LIVEKIT_AGENT_NAME: idleAgent,
          REDIS_URL: redisUrl,
          REDIS_KEY_PREFIX: prefix,
          IDLE_CHECK_IN_MS: '2000',
          IDLE_HANG_UP_MS: '2000',
        },
      }),
      startTokenService({ livekitUrl: livekit.url, apiKey: livekit.apiKey, apiSecret: livekit.apiSecret, port: 0, agentName: idleAgent, redisUrl, redisKeyPrefix: prefix }),
    ]);
    try {
      const page = await newVisitor(idleService.url);
      await connect(page);
      await waitForLine(page, 'agent', FIRST_TIME);
      const room = await text(page, 'room');
      const before = (await lines(page)).length;
      await say(page, 'Remind me about the dentist.');
      await waitForLine(page, 'agent', /dentist/, { after: before });
      await waitForLine(page, 'agent', literally(idleCheckInText('en-US')), { after: before });
      const goodbye = idleGoodbyeText('en-US', true);
      await waitForLine(page, 'agent', literally(goodbye), { after: before });
      await waitForState(page, 'Disconnected');
      // Every state the badge shows from here on.
      await page.evaluate(() => {
        const badge = document.getElementById('session-state')!;
        const shown: string[] = [];
        (window as unknown as { shownStates: string[] }).shownStates = shown;
        new MutationObserver(() => shown.push(badge.textContent ?? '')).observe(badge, { childList: true, characterData: true, subtree: true });
      });
      expect(await text(page, 'notice')).toBe(`The agent ended the call: ${goodbye} Press Connect to call again.`);
      expect(await page.isVisible('#error-panel')).toBe(false);
      expect(await page.evaluate(() => localStorage.getItem('pva.last_room'))).toBeNull();
      // The agent deletes the room after the goodbye; the page, already Disconnected, stays there.
      const rooms = new RoomServiceClient(livekit.url, livekit.apiKey, livekit.apiSecret);
      await waitFor('the room to be deleted', async () => (await rooms.listRooms([room])).length === 0, { timeoutMs: 15_000 });
      // No reconnect was tried (the old page went Reconnecting → Connecting into a new room here).
      expect((await page.evaluate(() => (window as unknown as { shownStates: string[] }).shownStates)).filter((st) => st !== 'Disconnected')).toEqual([]);
      expect(await text(page, 'session-state')).toBe('Disconnected');

      // Calling again: a new room, greeted as a return, the conversation resumed.
      const n = (await lines(page)).length;
      await connect(page);
      const back = await waitForLine(page, 'agent', /./, { after: n, timeoutMs: 30_000 });
      expect(back.text).toMatch(/^Welcome back/);
      // The status message follows the greeting's first text (the earlier call's is shown until then).
      await waitFor('the returning greeting reported on pva.session', async () => (await data(page, 'greeting-kind', 'kind')) === 'returning', { timeoutMs: 15_000 });
    } finally {
      await Promise.allSettled([idleService.close(), idleWorker.stop()]);
    }
  });

  it('no worker was there when the room was created: the page asks the service for the agent, which then arrives and greets, once', async () => {
    // A token service for an agent name with no worker yet: the room's dispatch finds none, and
    // livekit-server drops it for good.
    const lateAgent = `${agentName}-late`;
    const lateService = await startTokenService({ livekitUrl: livekit.url, apiKey: livekit.apiKey, apiSecret: livekit.apiSecret, port: 0, agentName: lateAgent, redisUrl, redisKeyPrefix: prefix });
    let lateWorker: WorkerProcess | undefined;
    try {
      const page = await newVisitor(lateService.url);
      await connect(page);
      const room = await text(page, 'room');
      // The worker registers after the room was created: nothing sends it there by itself.
      lateWorker = await startWorker({ env: { LIVEKIT_URL: livekit.url, LIVEKIT_API_KEY: livekit.apiKey, LIVEKIT_API_SECRET: livekit.apiSecret, LIVEKIT_AGENT_NAME: lateAgent, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } });
      const events = () => page.$$eval('#events li', (els) => els.map((el) => el.textContent ?? ''));
      await waitFor('the page to ask for the agent', async () => (await events()).some((e) => e.includes('no agent yet: asking the service for one')), { timeoutMs: 30_000 });
      await waitForLine(page, 'agent', FIRST_TIME, { timeoutMs: 30_000 });
      expect((await events()).filter((e) => e.includes('agent request:'))).toEqual([expect.stringContaining('agent request: dispatched')]);
      // One agent in the room, and one greeting.
      const rooms = new RoomServiceClient(livekit.url, livekit.apiKey, livekit.apiSecret);
      expect((await rooms.listParticipants(room)).filter((p) => p.identity.startsWith('agent-'))).toHaveLength(1);
      expect((await lines(page)).filter((l) => l.role === 'agent' && FIRST_TIME.test(l.text))).toHaveLength(1);
      // Asked again now, the service sends no second agent.
      const creds = await credentials(page);
      const again = await fetch(`${lateService.url}/api/agent`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...creds, room }) });
      expect(await again.json()).toEqual({ agent: 'present' });
      // Nobody can ask for an agent in a room that was not issued to them.
      const other = await fetch(`${lateService.url}/api/agent`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...creds, room: 'web-room-not-theirs' }) });
      expect(other.status).toBe(403);
      expect(await other.json()).toMatchObject({ reason: 'room_not_issued' });
    } finally {
      await Promise.allSettled([lateService.close(), lateWorker?.stop()]);
    }
  });

  it('the worker serving the page is SIGKILLed: the page stays in its call, asks for the agent, and another worker resumes the conversation', async () => {
    const crashAgent = `${agentName}-crash`;
    // No liveness beats: the page's own watch is what is tested here (with beats, the service
    // replaces the agent before the page asks: test/e2e/webhooks.test.ts).
    const env = { LIVEKIT_URL: livekit.url, LIVEKIT_API_KEY: livekit.apiKey, LIVEKIT_API_SECRET: livekit.apiSecret, LIVEKIT_AGENT_NAME: crashAgent, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, AGENT_LIVENESS_TTL_MS: '0' };
    const [first, crashService] = await Promise.all([
      startWorker({ env }),
      startTokenService({ livekitUrl: livekit.url, apiKey: livekit.apiKey, apiSecret: livekit.apiSecret, port: 0, agentName: crashAgent, redisUrl, redisKeyPrefix: prefix }),
    ]);
    let second: WorkerProcess | undefined;
    try {
      const page = await newVisitor(crashService.url);
      await connect(page);
      await waitForLine(page, 'agent', FIRST_TIME);
      const before = (await lines(page)).length;
      await say(page, 'My parcel number is 8812.');
      await waitForLine(page, 'agent', /8812/, { after: before });
      // Every state the badge shows from here on.
      await page.evaluate(() => {
        const badge = document.getElementById('session-state')!;
        const shown: string[] = [];
        (window as unknown as { shownStates: string[] }).shownStates = shown;
        new MutationObserver(() => shown.push(badge.textContent ?? '')).observe(badge, { childList: true, characterData: true, subtree: true });
      });
      second = await startWorker({ env });
      await first.kill(); // SIGKILL, the whole process group: no goodbye, no leave
      const events = () => page.$$eval('#events li', (els) => els.map((el) => el.textContent ?? ''));
      // The dead agent is dropped after the server's ping timeout; 12 s later the page asks.
      await waitFor('the page to ask for an agent', async () => (await events()).some((e) => e.includes('agent request: dispatched')), { timeoutMs: 60_000 });
      const back = await waitForLine(page, 'agent', /^Welcome back/, { after: before, timeoutMs: 30_000 });
      expect(back.text).toBe(renderGreeting({ kind: 'welcome_back_brief', agoMs: 0 }, null, 'en-US'));
      await waitFor('the resumed session reported on pva.session', async () => (await data(page, 'greeting-kind', 'kind')) === 'welcome_back_brief', { timeoutMs: 15_000 });
      // The page never left its call.
      expect((await page.evaluate(() => (window as unknown as { shownStates: string[] }).shownStates)).filter((st) => st !== 'Connected')).toEqual([]);
      expect(await text(page, 'session-state')).toBe('Connected');
    } finally {
      await Promise.allSettled([crashService.close(), first.stop(), second?.stop()]);
    }
  });

  it('the browser goes offline: the attempts give up with an error; when the network is back the page connects by itself and is greeted, without Retry', async () => {
    const page = await newVisitor();
    const context = page.context();
    // Chromium's own offline mode: every request of the page fails, and navigator.onLine follows.
    await context.setOffline(true);
    await page.click('#connect');
    await waitForState(page, 'Error', 40_000);
    expect(await text(page, 'error-message')).toMatch(/after 3 attempts/);
    expect(await lines(page)).toEqual([]);
    await context.setOffline(false);
    // No click: the browser's 'online' event starts a new round.
    await waitForState(page, 'Connected', 30_000);
    await waitForLine(page, 'agent', FIRST_TIME);
    const events = await page.$$eval('#events li', (els) => els.map((el) => el.textContent ?? ''));
    expect(events.some((e) => e.includes('back online: trying again'))).toBe(true);
    expect(await page.isVisible('#error-panel')).toBe(false);
  });

  it('an unreachable LiveKit server: the reconnect policy gives up after 3 attempts, Error with Retry', async () => {
    const deadPort = await freeTcpPort();
    const dead = await startTokenService({
      livekitUrl: `ws://127.0.0.1:${deadPort}`,
      apiKey: livekit.apiKey,
      apiSecret: livekit.apiSecret,
      port: 0,
    });
    try {
      const page = await newVisitor(dead.url);
      const seen = new Set<string>();
      await page.click('#connect');
      await waitFor(
        'Error after the attempts',
        async () => {
          seen.add(await text(page, 'attempt'));
          return (await text(page, 'session-state')) === 'Error';
        },
        { timeoutMs: 40_000, intervalMs: 10 },
      );
      expect(await text(page, 'error-message')).toMatch(/after 3 attempts/);
      expect(await page.isVisible('#retry')).toBe(true);
      expect(await page.isVisible('#error-panel')).toBe(true);
      // Every state the badge shows from here on: against a dead server a new round of attempts
      // can be back in Error within one poll interval.
      await page.evaluate(() => {
        const badge = document.getElementById('session-state')!;
        const shown: string[] = [];
        (window as unknown as { shownStates: string[] }).shownStates = shown;
        new MutationObserver(() => shown.push(badge.textContent ?? '')).observe(badge, { childList: true, characterData: true, subtree: true });
      });
      await page.click('#retry');
      await waitFor('Retry to start over', async () => (await page.evaluate(() => (window as unknown as { shownStates: string[] }).shownStates)).some((s) => s !== 'Error'), { timeoutMs: 5_000 });
      expect(['Connecting', 'Error']).toContain(await text(page, 'session-state'));
      console.log(`[figure] attempts shown: ${[...seen].filter((s) => s !== '').join(' | ')}`);
    } finally {
      await dead.close();
    }
  });
});
