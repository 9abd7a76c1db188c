// Copies non-TypeScript run-time assets (Lua scripts) next to the compiled output in dist/.
import { cpSync, existsSync } from 'node:fs';
for (const dir of ['lib/store/scripts']) {
  if (existsSync(dir)) cpSync(dir, `dist/${dir}`, { recursive: true });
}
