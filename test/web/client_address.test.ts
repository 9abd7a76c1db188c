/**
 * The token service's limit on new identities is kept per client address. Reached directly it
 * is the socket peer and `X-Forwarded-For` is ignored (a client could write anything there);
 * behind N reverse proxies of the deployment's own it is the address the furthest of them saw.
 * The limit is checked over real HTTP: separate clients behind one proxy get separate limits,
 * a forged header does not get a client out of its own, and neither do other addresses of the
 * client's own IPv6 /64.
 */
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { clientAddress, rateLimitKey } from '../../web/server/client_address.js';
import { MemoryDeviceStore } from '../../web/server/device_store.js';
import { startTokenService, type TokenService } from '../../web/server/service.js';

/** A request from `peer` carrying `forwarded` as its X-Forwarded-For header (none when undefined). */
function req(peer: string | undefined, forwarded?: string | string[]): Pick<IncomingMessage, 'headers' | 'socket'> {
  return { socket: { remoteAddress: peer } as IncomingMessage['socket'], headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } };
}

describe('clientAddress', () => {
  it('with no trusted proxy is the socket peer, whatever X-Forwarded-For says', () => {
    expect(clientAddress(req('10.0.0.5', '203.0.113.9'), 0)).toBe('10.0.0.5');
    expect(clientAddress(req(undefined), 0)).toBe('unknown');
  });

  it('behind one proxy is the address that proxy appended (the rightmost entry), not what the client wrote before it', () => {
    expect(clientAddress(req('10.0.0.2', '203.0.113.9'), 1)).toBe('203.0.113.9');
    expect(clientAddress(req('10.0.0.2', '198.51.100.1, 203.0.113.9'), 1)).toBe('203.0.113.9');
    expect(clientAddress(req('10.0.0.2', ['198.51.100.1', ' 203.0.113.9 ']), 1)).toBe('203.0.113.9');
  });

  it('behind two proxies is the second entry from the right', () => {
    expect(clientAddress(req('10.0.0.2', 'forged, 203.0.113.9, 10.0.0.3'), 2)).toBe('203.0.113.9');
  });

  it('a request that passed fewer proxies than trusted gives the furthest address it has', () => {
    expect(clientAddress(req('10.0.0.2', '203.0.113.9'), 3)).toBe('203.0.113.9');
    expect(clientAddress(req('10.0.0.2'), 1)).toBe('10.0.0.2');
    expect(clientAddress(req('10.0.0.2', ' , '), 1)).toBe('10.0.0.2');
  });
});

describe('rateLimitKey', () => {
  it('keeps an IPv4 address as it is, also written IPv4-mapped or with a port', () => {
    for (const a of ['192.0.2.1', '192.0.2.1:5678', '::ffff:192.0.2.1', '::FFFF:192.0.2.1']) expect(rateLimitKey(a)).toBe('192.0.2.1');
  });

  it('keys an IPv6 address by its /64, however it is written', () => {
    for (const a of ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::9', '2001:0db8:0001:0002::1', '[2001:db8:1:2::9]:443', '[2001:DB8:1:2::9]']) {
      expect(rateLimitKey(a)).toBe('2001:db8:1:2::/64');
    }
    expect(rateLimitKey('2001:db8:1:3::9')).toBe('2001:db8:1:3::/64');
    expect(rateLimitKey('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(rateLimitKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(rateLimitKey('1::2:3.4.5.6')).toBe('1:0:0:0::/64');
  });

  it('keeps anything else, cut to 64 characters', () => {
    expect(rateLimitKey('unknown')).toBe('unknown');
    expect(rateLimitKey('x'.repeat(10_000))).toHaveLength(64);
  });
});

describe('the limit on new identities, over HTTP', () => {
  let svc: TokenService | undefined;
  let now = Date.now();
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  const start = async (trustProxyHops: number): Promise<TokenService> => {
    svc = await startTokenService({
      livekitUrl: 'ws://127.0.0.1:1',
      apiKey: 'unit-key',
      apiSecret: 'unit-secret-unit-secret-unit-secret-0123',
      port: 0,
      deviceStore: new MemoryDeviceStore(),
      sessionEraser: null,
      agentSpawner: null,
      roomCloser: { deleteRoom: async () => undefined },
      identityRatePerMin: 3,
      trustProxyHops,
      nowMs: () => now,
    });
    return svc;
  };
  /** POST /api/identity, optionally through a proxy that wrote `forwarded`. */
  const newIdentity = async (s: TokenService, forwarded?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (forwarded !== undefined) headers['x-forwarded-for'] = forwarded;
    const res = await fetch(`${s.url}/api/identity`, { method: 'POST', headers, body: '{}' });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
  };

  it('reached directly: the fourth identity in a minute is refused with 429 and Retry-After, a forged X-Forwarded-For does not escape it, the next minute is open again', async () => {
    const s = await start(0);
    for (let i = 0; i < 3; i++) expect((await newIdentity(s)).status).toBe(201);
    const refused = await newIdentity(s);
    expect(refused).toMatchObject({ status: 429, retryAfter: '60', body: { error: 'too_many_requests', reason: 'rate_limited' } });
    expect(refused.body.identity).toBeUndefined();
    expect((await newIdentity(s, '203.0.113.77')).status).toBe(429);
    now += 60_000;
    expect((await newIdentity(s)).status).toBe(201);
  });

  it('behind a trusted proxy: each client has its own limit, and writing another address before the proxy’s entry does not reset it', async () => {
    const s = await start(1);
    for (let i = 0; i < 3; i++) expect((await newIdentity(s, '203.0.113.1')).status).toBe(201);
    expect((await newIdentity(s, '203.0.113.1')).status).toBe(429);
    expect((await newIdentity(s, '198.51.100.9, 203.0.113.1')).status).toBe(429);
    // Another client behind the same proxy (same socket peer) is not affected.
    expect((await newIdentity(s, '203.0.113.2')).status).toBe(201);
  });

  it('behind a trusted proxy: an IPv6 client shares one limit across its /64, and another /64 has its own', async () => {
    const s = await start(1);
    for (let i = 1; i <= 3; i++) expect((await newIdentity(s, `2001:db8:5:6::${i}`)).status).toBe(201);
    expect((await newIdentity(s, '2001:db8:5:6:ffff:1:2:3')).status).toBe(429);
    expect((await newIdentity(s, '2001:db8:5:7::1')).status).toBe(201);
  });
});
