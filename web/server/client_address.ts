/**
 * The address a request came from, for per-client limits (the token service's brake on new
 * identities). Behind reverse proxies (TLS termination, a load balancer) every request arrives
 * from the nearest proxy, so all clients would share one limit; each proxy appends the address
 * it saw to `X-Forwarded-For`. Only the entries the trusted proxies appended can be believed:
 * anything to their left came from the client and may be forged.
 *
 * The limit is kept per {@link rateLimitKey}: an IPv4 address, or an IPv6 /64. One subscriber
 * usually holds a whole /64, so keying by single IPv6 addresses would give one client 2^64 limits.
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** Most trusted proxy hops accepted: more is a misconfiguration, not a deployment. */
export const MAX_TRUST_PROXY_HOPS = 10;

/**
 * The client address of `req` behind `trustProxyHops` reverse proxies of the service's own
 * (0 = the service is reached directly: the socket peer, and `X-Forwarded-For` is ignored).
 * With N hops the addresses from nearest to furthest are the socket peer, then the
 * `X-Forwarded-For` entries from the right; the client is the N-th of them (counting the peer as
 * 0), or the furthest one when the request passed through fewer proxies.
 */
export function clientAddress(req: Pick<IncomingMessage, 'headers' | 'socket'>, trustProxyHops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (trustProxyHops <= 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const nearestFirst = [peer, ...forwarded.reverse()];
  return nearestFirst[Math.min(trustProxyHops, nearestFirst.length - 1)] as string;
}

/** Longest key kept for an address that is not an IP address (a proxy's `unknown`, say). */
const MAX_OTHER_KEY_CHARS = 64;

/** The first four groups of an IPv6 address, as `a:b:c:d::/64` (zone id dropped, `::` expanded). */
function ipv6Prefix64(address: string): string {
  const a = (address.split('%')[0] as string).toLowerCase();
  // An embedded IPv4 address (`::1.2.3.4`) stands for the last two groups.
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':')).flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const at = a.indexOf('::');
  const left = groups(at < 0 ? a : a.slice(0, at));
  const right = at < 0 ? [] : groups(a.slice(at + 2));
  const full = [...left, ...new Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${full.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The key the limit on new identities counts `address` under: an IPv4 address as it is (also
 * when written IPv4-mapped, `::ffff:192.0.2.1`), the /64 of an IPv6 address, anything else cut
 * to {@link MAX_OTHER_KEY_CHARS}. A port a proxy wrote (`192.0.2.1:5678`, `[2001:db8::1]:443`)
 * is dropped.
 */
export function rateLimitKey(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(address);
  const ip = bracketed?.[1] ?? withPort?.[1] ?? address;
  if (isIPv4(ip)) return ip;
  if (isIPv6(ip)) {
    const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
    return mapped !== null && isIPv4(mapped[1] as string) ? (mapped[1] as string) : ipv6Prefix64(ip);
  }
  return address.slice(0, MAX_OTHER_KEY_CHARS);
}
