/**
 * Builds `dist/docxy`: one self-contained linux executable (Bun runtime,
 * Elysia, the Swagger UI assets). Flags and why (research/bun-elysia.md §7):
 * - `--minify-whitespace --minify-syntax`, not `--minify`: keeps class and
 *   function names for stack traces (`--keep-names` is ignored in Bun 1.4);
 * - `--bytecode`: ~46 ms to first response instead of ~110 ms;
 * - `--sourcemap`: embedded, so traces name our files;
 * - no autoloading of `.env` / `bunfig.toml` from the directory it runs in;
 * - `src/cache/hashing-worker.ts` as a second entry point: the worker thread
 *   fills hash on (cache/hashing-thread.ts) must be inside the binary too.
 *
 * DOCXY_BUILD_TARGET cross-compiles (e.g. `bun-linux-arm64`: bun fetches that
 * target's runtime from the npm registry itself) and DOCXY_BUILD_OUT names the
 * output, so a second target does not overwrite dist/docxy (scripts/release.ts).
 * A cross-compiled binary gets no `--bytecode`: JSC bytecode only runs on the
 * platform that generated it (oven-sh/bun#18416: segfault at start; #24144).
 */
import { $ } from "bun";

const target = process.env.DOCXY_BUILD_TARGET ?? "bun-linux-x64";
const outfile = process.env.DOCXY_BUILD_OUT ?? "dist/docxy";
const bytecode = target === `bun-${process.platform}-${process.arch}` ? ["--bytecode"] : [];
await $`bun build --compile --target=${target} --minify-whitespace --minify-syntax ${bytecode} --sourcemap \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  src/main.ts src/cache/hashing-worker.ts --outfile ${outfile}`;
