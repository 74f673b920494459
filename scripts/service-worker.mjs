// Writes DIR/sw.js from client/assets/sw.js: SHELL, the built files a page needs (all but the
// demo rooms' worker, the precompressed copies and sw.js itself), and VERSION, a hash of
// every built file, so that each build that changes anything is a new service worker.
// Usage: node scripts/service-worker.mjs dist   (scripts/build-client.sh runs it)
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const dir = process.argv[2] ?? 'dist';
const files = [];
(function walk(path) {
  for (const name of readdirSync(path).sort()) {
    const file = join(path, name);
    if (statSync(file).isDirectory()) walk(file);
    else if (!/\.(gz|br)$/.test(name) && name !== 'sw.js') files.push(relative(dir, file).split('\\').join('/'));
  }
})(dir);
const hash = createHash('sha256');
for (const file of files) hash.update(file).update('\0').update(readFileSync(join(dir, file)));
const version = hash.digest('hex').slice(0, 16);
const shell = files.filter((file) => !file.startsWith('mock-worker'));
// The template's comments say what it does; the file browsers fetch goes without them.
const template = readFileSync(new URL('../client/assets/sw.js', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => !line.startsWith('//'))
  .join('\n');
writeFileSync(
  join(dir, 'sw.js'),
  template.replace('__VERSION__', version).replace('__SHELL__', JSON.stringify(shell)),
);
console.log(`service worker ${version}: ${shell.length} files in the app shell`);
