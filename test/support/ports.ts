import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * A free TCP port (bound on every address, then released): free for a server on 127.0.0.1 and
 * for one on 0.0.0.0, such as a worker's health endpoint.
 */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A free UDP port on 127.0.0.1 (bound then released). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}
