/**
 * The token service's limit on new identities is kept per client address. Reached directly it
 * is the socket peer and `X-Forwarded-For` is ignored (a client could write anything there);
 * behind N reverse proxies of the deployment's own it is the address the furthest of them saw;
 * an IPv6 client counts as its /64. The limit itself is tested over HTTP in rate_limits.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, rateLimitKey } from '../../web/server/client_address.js';

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
