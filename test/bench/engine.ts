/**
 * `npm run bench -- engine [--hosts 3] [--stack dev] [--target 90] [--json]`
 *
 * Boots N host containers of the test host image (test/infra/40-host-image.sh) in
 * parallel from the SAME user-data (components/engine.ts renderUserData for the stack,
 * engine channel `distro`: Docker's apt repository is unreachable here), each with its
 * own loop-device data volume, and measures the time from `docker run` to the readiness
 * marker the user-data writes last. Reports each host, the median and the max.
 * Target: max < 90 s. Exit 0 when met, 1 when missed or a host failed, 2 bad usage.
 * --no-apt-cache measures the hosts downloading straight from Debian's mirror.
 *
 * Needs what `bash test/infra/up.sh` sets up: dockerd, the host image, apt-cacher-ng
 * (apt downloads come from its cache after the first run; the first run of a fresh
 * machine also measures Debian's mirror).
 */
import * as fs from "node:fs";
import yargs from "yargs";
import * as h from "../host/harness";

interface Result {
  host: string;
  seconds: number;
  dataVolume: "block" | "bind";
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = await yargs(argv)
      .scriptName("npm run bench -- engine")
      .usage("$0 [options]\n\nBoots N Debian host containers in parallel from the same rendered user-data and reports time to engine-ready.")
      .option("hosts", { type: "number", default: 3, describe: "how many hosts to boot in parallel (1-8)" })
      .option("stack", { type: "string", default: "dev", describe: "stack whose environment the user-data is rendered from" })
      .option("target", { type: "number", default: 90, describe: "target for the slowest host, in seconds" })
      .option("apt-cache", { type: "boolean", default: true, describe: "use the local apt-cacher-ng; --no-apt-cache: every host downloads from Debian's mirror" })
      .option("json", { type: "boolean", default: false, describe: "print one JSON object instead of text" })
      .strict()
      .exitProcess(false)
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .help()
      .parseAsync();
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (argv.includes("--help")) return 0;
  if (!Number.isInteger(args.hosts) || args.hosts < 1 || args.hosts > 8) {
    process.stderr.write(`--hosts must be an integer from 1 to 8 (got ${args.hosts})\n`);
    return 2;
  }
  const log = (l: string) => {
    if (!args.json) process.stdout.write(`${l}\n`);
  };

  let spec;
  try {
    h.assertHostImage();
    spec = h.distroSpec(args.stack);
    await h.reapStale();
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }

  const runId = `bench${process.pid}`;
  const dir = h.scratchDir("dockyard-bench-engine");
  const hostKey = h.newKeyPair(dir, "host-key");
  const input = h.hostInput(spec, `${spec.stack}-bench`);
  const userData = h.renderUserData(input);
  const volumes: h.DataVolume[] = [];
  const hosts: h.Host[] = [];
  const results: Result[] = [];
  const failures: string[] = [];
  log(`booting ${args.hosts} hosts of stack ${spec.stack} (engine channel distro, apt ${args["apt-cache"] ? "via the local apt-cacher-ng" : "straight from Debian's mirror"}) in parallel...`);
  try {
    for (let i = 1; i <= args.hosts; i++) volumes.push(await h.createDataVolume(`${runId}-${i}`));
    const settled = await Promise.allSettled(
      volumes.map(async (data, i) => {
        const host = await h.startHost({
          name: `dockyard-bench-${runId}-${i + 1}`,
          userData,
          instanceId: `i-${runId}-${i + 1}`,
          data,
          input,
          hostPrivateKey: fs.readFileSync(hostKey.privateKey, "utf8"),
          aptCache: args["apt-cache"],
        });
        hosts.push(host);
        const seconds = await h.waitEngineReady(host);
        log(`  ${host.name}: engine ready after ${seconds.toFixed(1)} s`);
        results.push({ host: host.name, seconds, dataVolume: data.kind });
      }),
    );
    for (const s of settled) if (s.status === "rejected") failures.push(String(s.reason));
  } finally {
    for (const x of hosts) await h.removeHost(x);
    for (const v of volumes) await h.destroyDataVolume(v);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const secs = results.map((r) => r.seconds);
  const summary = {
    stack: spec.stack,
    hosts: args.hosts,
    ready: results.length,
    medianSeconds: secs.length ? Number(h.median(secs).toFixed(1)) : null,
    maxSeconds: secs.length ? Number(Math.max(...secs).toFixed(1)) : null,
    aptCache: args["apt-cache"] && h.aptCacheRunning(),
    targetSeconds: args.target,
    met: failures.length === 0 && secs.length === args.hosts && Math.max(...secs) < args.target,
    results: results.map((r) => ({ ...r, seconds: Number(r.seconds.toFixed(1)) })),
    failures,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else {
    for (const f of failures) process.stderr.write(`FAILED: ${f}\n`);
    log(`median ${summary.medianSeconds ?? "-"} s, max ${summary.maxSeconds ?? "-"} s (target: max < ${args.target} s): ${summary.met ? "met" : "MISSED"}`);
  }
  return summary.met ? 0 : 1;
}
