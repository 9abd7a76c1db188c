/**
 * `npm run web`: bundles the page and starts the token service (config from the environment,
 * `.env`, then `.env.development`; see `config.ts`). Open the printed URL
 * (http://127.0.0.1:8080 by default). Ctrl-C stops it.
 */
import { ConfigError } from '../../lib/errors.js';
import { loadWebConfig } from './config.js';
import { jsonLogger } from './logger.js';
import { startTokenService } from './service.js';

const log = jsonLogger({ level: process.env.WEB_LOG_LEVEL === 'debug' ? 'debug' : 'info' }).child({ svc: 'web' });

try {
  const config = loadWebConfig();
  const service = await startTokenService({ ...config, logger: log, buildClient: true });
  process.stderr.write(`web: open ${service.url} (LiveKit ${config.publicLivekitUrl}${config.agentName ? `, agent "${config.agentName}"` : ''})\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void service.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`web: configuration error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
