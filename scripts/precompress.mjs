// Writes FILE.br and FILE.gz beside every text or wasm asset of a built client directory, so
// that the room server (--client-dir) can send them as they are to browsers that accept them.
// Prints the transfer size of the client's code (wasm, js, css) with each encoding, and apart
// from it the demo rooms' worker (mock-worker*), which only a mock:// room loads.
// Usage: node scripts/precompress.mjs dist
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const dir = process.argv[2] ?? 'dist';
const compressible = /\.(wasm|js|css|html|svg|webmanifest|json)$/;
const code = /\.(wasm|js|css)$/;
const totals = { raw: 0, gzip: 0, brotli: 0 };
const worker = { raw: 0, gzip: 0, brotli: 0 };

function walk(path) {
  for (const name of readdirSync(path)) {
    const file = join(path, name);
    if (statSync(file).isDirectory()) {
      walk(file);
    } else if (compressible.test(name)) {
      const bytes = readFileSync(file);
      const gz = gzipSync(bytes, { level: 9 });
      const br = brotliCompressSync(bytes, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: 11,
          [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
        },
      });
      writeFileSync(`${file}.gz`, gz);
      writeFileSync(`${file}.br`, br);
      if (code.test(name)) {
        const sum = name.startsWith('mock-worker') ? worker : totals;
        sum.raw += bytes.length;
        sum.gzip += gz.length;
        sum.brotli += br.length;
      }
    }
  }
}

walk(dir);
console.log(
  `precompressed: client code ${totals.raw} bytes, ${totals.gzip} gzip, ${totals.brotli} brotli`,
);
console.log(
  `precompressed: demo worker ${worker.raw} bytes, ${worker.gzip} gzip, ${worker.brotli} brotli`,
);
