// API types for the console, generated from the server's own OpenAPI document so the two
// cannot drift. `npm run gen:api` (with `formaops serve` on 127.0.0.1:8080, or OPENAPI_URL)
// rewrites src/api/schema.d.ts; the browser suite checks the committed file is current.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';

export const SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'api', 'schema.d.ts');

/** The TypeScript for the document at `url`. */
export async function generate(url) {
  const ast = await openapiTS(new URL(url), { silent: true });
  return COMMENT_HEADER + astToString(ast);
}

/** Throws unless the committed file is what the server's document generates. */
export async function check(url) {
  const want = await generate(url);
  if (readFileSync(SCHEMA_FILE, 'utf8') !== want) {
    throw new Error('src/api/schema.d.ts is stale: run `npm run gen:api` against this server and commit it');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const url = process.env.OPENAPI_URL ?? 'http://127.0.0.1:8080/api/openapi.json';
  writeFileSync(SCHEMA_FILE, await generate(url));
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)} from ${url}`);
}
