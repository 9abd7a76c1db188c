/**
 * The address a request came from, for per-client limits (the token service's brake on new
 * identities). Behind reverse proxies (TLS termination, a load balancer) every request arrives
 * from the nearest proxy, so all clients would share one limit; each proxy appends the address
 * it saw to `X-Forwarded-For`. Only the entries the trusted proxies appended can be believed:
 * anything to their left came from the client and may be forged.
 */
import type { IncomingMessage } from 'node:http';

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
