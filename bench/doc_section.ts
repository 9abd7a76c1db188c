/**
 * Writes one benchmark's section of `docs/benchmarks.md`: the text under `## <heading>` up to the
 * next `## ` heading is replaced (or the section is appended), the rest of the file is kept.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

/** Replaces (or appends) the section `## heading` of docs/benchmarks.md with `body`. */
export function writeDocSection(heading: string, body: string, path = 'docs/benchmarks.md'): void {
  if (!existsSync('docs')) mkdirSync('docs');
  const current = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const title = `## ${heading}`;
  const start = current.indexOf(`${title}\n`);
  let next: string;
  if (start < 0) next = `${current.trimEnd()}\n\n${title}\n\n${body}`;
  else {
    const rest = current.slice(start + title.length + 1);
    const m = /^## /m.exec(rest);
    const end = m === null ? current.length : start + title.length + 1 + m.index;
    next = `${current.slice(0, start)}${title}\n\n${body}\n${current.slice(end)}`;
  }
  writeFileSync(path, `${next.trimEnd()}\n`);
}
