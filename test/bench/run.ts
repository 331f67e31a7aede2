/**
 * Benchmark entry: `npm run bench -- <name> [options]` runs test/bench/<name>.ts. The benchmarks
 * are developer measurements, not operator commands: the engine's needs the host harness (test/host).
 * Each benchmark module exports `run(argv: string[]): Promise<number>` and returns the
 * exit code: 0 targets met, 1 a target missed or the run failed, 2 bad usage.
 */
import * as fs from "node:fs";
import * as path from "node:path";

const BENCH_DIR = __dirname;

function available(): string[] {
  try {
    return fs
      .readdirSync(BENCH_DIR)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && f !== path.basename(__filename))
      .map((f) => f.replace(/\.ts$/, ""))
      .sort();
  } catch {
    return [];
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const names = available();
  if (!name || name === "--help" || name === "-h") {
    process.stderr.write(`usage: npm run bench -- <name> [options]\n\nbenchmarks: ${names.join(", ") || "(none)"}\n`);
    return name ? 0 : 2;
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !names.includes(name)) {
    process.stderr.write(`unknown benchmark ${JSON.stringify(name)}; available: ${names.join(", ") || "(none)"}\n`);
    return 2;
  }
  const mod = (await import(path.join(BENCH_DIR, `${name}.ts`))) as { run?: (argv: string[]) => Promise<number | void> };
  if (typeof mod.run !== "function") {
    process.stderr.write(`test/bench/${name}.ts does not export run(argv)\n`);
    return 2;
  }
  return (await mod.run(rest)) ?? 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
