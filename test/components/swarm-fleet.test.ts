/**
 * SwarmFleet under the mock runtime, with what the render cannot show: the join-tokens
 * command's answer (a secret, a placeholder in every render) made known, so each join's
 * stdin can be read. Five hosts: three managers (one per zone first) and two workers.
 * What this proves: each host joins with its role's token, as a secret, and only hosts other
 * than the first join. What it does not: that Docker accepts the tokens (the host test does,
 * for managers; no worker joins there, the three hosts are all managers).
 */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { DockyardMocks } from "../../scripts/lib/mocks";
import { promisify, settle } from "../helpers/pulumi";
import { loadStackSpec } from "../../stacks";
import { SwarmFleet } from "../../components/swarm-fleet";
import * as command from "@pulumi/command";

const WORKER_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-worker";
const MANAGER_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-manager";

/** The shared mocks, and `docker swarm join-token -q worker; ... manager` answered as a manager would. */
class SwarmMocks extends DockyardMocks {
  override newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
    const r = super.newResource(args);
    if (args.type === "command:local:Command" && args.name.endsWith("-join-tokens")) r.state.stdout = `${WORKER_TOKEN}\n${MANAGER_TOKEN}\n`;
    return r;
  }
}
const mocks = new SwarmMocks();
pulumi.runtime.setAllConfig({}, []);
pulumi.runtime.setMocks(mocks, "dockyard", "prod", false);

// A secret input as the mock monitor passes it on: Pulumi's special signature key and the
// secret signature (sdk/nodejs/runtime/rpc.ts specialSigKey, specialSecretSig), and the value.
const secret = (value: string) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });

const PROD = loadStackSpec("prod");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dockyard-host";

describe("SwarmFleet with five hosts", () => {
  // Ordinals 1-5 of one group; ordinal 4 shares zone "1"'s subnet in a 3-zone region, but
  // the program knows only ordinals: what matters here is that three distinct ones lead.
  const hosts = [1, 2, 3, 4, 5].map((i) => {
    const name = `prod-app-${i}`;
    const connection = { target: `10.0.0.${10 + i}`, user: "admin", hostPublicKey: HOST_KEY };
    const ready = new command.local.Command(`${name}-ready`, { create: "true" });
    return { name, group: "app", zone: String(i), address: `10.0.0.${10 + i}`, connection, ready };
  });
  const fleet = new SwarmFleet("swarm", {
    stack: "prod",
    hosts,
    services: PROD.services,
    secrets: {},
    architecture: PROD.os.architecture,
    logging: PROD.engine.daemon,
    proxyImage: PROD.proxyImage,
    proxy: PROD.proxy,
  });

  it("makes the first three hosts managers, the first of them the one that inits the swarm", () => {
    expect(fleet.managers).toEqual(["prod-app-1", "prod-app-2", "prod-app-3"]);
  });

  it("joins hosts 2 and 3 with the manager token and hosts 4 and 5 with the worker token, each on stdin as a secret", async () => {
    await promisify(fleet.services);
    await settle();
    const joins = mocks.ofType("command:local:Command").filter((r) => r.name.endsWith("-join"));
    expect(joins.map((j) => j.name).sort()).toEqual(["swarm-prod-app-2-join", "swarm-prod-app-3-join", "swarm-prod-app-4-join", "swarm-prod-app-5-join"]);
    for (const join of joins) {
      const manager = /-app-[23]-join$/.test(join.name);
      expect(join.inputs.stdin, join.name).toEqual(secret(`${manager ? MANAGER_TOKEN : WORKER_TOKEN}\n`));
      // The token is never on the command line.
      expect(String(join.inputs.create)).toMatch(/docker swarm join --token "\$token"/);
      expect(String(join.inputs.create)).not.toContain("SWMTKN-1-3pu6");
    }
    // The token command's answer is kept secret and out of the provider's logs.
    const tokens = mocks.get("command:local:Command", "swarm-join-tokens");
    expect(tokens.inputs.logging).toBe("none");
  });
});
