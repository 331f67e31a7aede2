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
import { contractRender, SWARM_STACK } from "../contracts/stacks";
import { imageRef } from "../../components/fleet";

const WORKER_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-worker";
const MANAGER_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-manager";

/** Resources whose creation the test holds back (by name) until it releases them. */
const held = new Map<string, { released: Promise<void>; release: () => void }>();
function hold(name: string): () => void {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  held.set(name, { released, release });
  return release;
}

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
// The mocks as the runtime calls them, a held creation answered once released.
pulumi.runtime.setMocks(
  {
    newResource: (args) => {
      const r = mocks.newResource(args);
      const h = held.get(args.name);
      return h ? h.released.then(() => r) : r;
    },
    call: (args) => mocks.call(args),
  },
  "dockyard",
  "prod",
  false,
);

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

/**
 * The update gate per swarm service (components/swarm/update-gate.sh): the provider's own
 * convergence wait can report an update complete that swarm then rolls back
 * (kreuzwerker/terraform-provider-docker 5074970c internal/provider/resource_docker_service_funcs.go,
 * resourceDockerServiceUpdateRefreshFunc + replicatedConsoleLogUpdater.update: slots counted
 * while `updating`, the old tasks fill them once the new one failed). So each service has a
 * gate on the first manager, run again for a new image, after its service; and the outputs wait for it.
 */
describe("the update gate of every swarm service", () => {
  const rendered = contractRender(SWARM_STACK);
  const key = (x: { type: string; name: string }) => `${x.type}::${x.name}`;

  it("prod in swarm mode: one gate per service and per proxy, on the first manager, after its service, triggered by its image", async () => {
    const r = await rendered;
    const services = r.resources.filter((x) => x.type === "docker:index/service:Service");
    expect(services.length).toBe(PROD.services.length + 3);
    const init = r.resources.find((x) => x.type === "command:local:Command" && x.name.endsWith("-init"))!;
    for (const svc of services) {
      const serviceName = String(svc.inputs.name);
      const image = String((svc.inputs.taskSpec as any).containerSpec.image);
      const gate = r.resources.find((x) => x.type === "command:local:Command" && x.name.endsWith(`-${serviceName}-update-gate`));
      expect(gate, serviceName).toBeDefined();
      expect(gate!.options?.dependsOn, serviceName).toContain(key(svc));
      expect(gate!.inputs.create).toBe(`bash -s -- ${parseInt(String((svc.inputs.convergeConfig as any).timeout), 10)} '${serviceName}' '${image}'`);
      expect(gate!.inputs.stdin).toMatch(/^#!\/bin\/bash\n# Dockyard: the update gate/);
      expect(gate!.inputs.triggers as unknown[], serviceName).toContain(image);
      // Over the one way in to the first manager: the interpreter the init runs with.
      expect(gate!.inputs.interpreter).toEqual(init.inputs.interpreter);
    }
    for (const svc of PROD.services) {
      const gate = r.resources.find((x) => x.name.endsWith(`-${svc.name}-update-gate`))!;
      expect(gate.inputs.triggers as unknown[]).toContain(imageRef(svc));
    }
  });

  it("a host's proxy moves only after the previous host's proxy passed its gate", async () => {
    const r = await rendered;
    const proxy = r.resources.find((x) => x.type === "docker:index/service:Service" && x.inputs.name === "proxy-prod-app-2")!;
    expect(proxy.options?.dependsOn).toContain(key(r.resources.find((x) => x.name.endsWith("-proxy-prod-app-1-update-gate"))!));
  });

  it("the services and proxyImage outputs resolve only once the gates passed", async () => {
    const hosts = [1, 2, 3].map((i) => {
      const name = `prod-held-${i}`;
      const connection = { target: `10.0.1.${10 + i}`, user: "admin", hostPublicKey: HOST_KEY };
      const ready = new command.local.Command(`${name}-ready`, { create: "true" });
      return { name, group: "app", zone: String(i), address: `10.0.1.${10 + i}`, connection, ready };
    });
    const svc = PROD.services.find((s) => s.group === "app" && s.publishPort !== undefined) ?? PROD.services[0];
    const releaseService = hold(`held-${svc.name}-update-gate`);
    const releaseProxy = hold("held-proxy-prod-held-3-update-gate");
    const fleet = new SwarmFleet("held", { stack: "prod", hosts, services: PROD.services.map((s) => ({ ...s, group: "app" })), secrets: {}, architecture: PROD.os.architecture, logging: PROD.engine.daemon, proxyImage: PROD.proxyImage, proxy: PROD.proxy });
    let services: Record<string, unknown> | undefined;
    let proxyImage: string | undefined | null = null;
    void promisify(fleet.services).then((v) => (services = v));
    void promisify(fleet.proxyImage).then((v) => (proxyImage = v));
    await settle();
    // Every other resource of the fleet is created, the service itself too; only its gate and the last proxy's are held.
    expect(mocks.ofType("docker:index/service:Service").some((x) => x.name === `held-${svc.name}`)).toBe(true);
    expect(services).toBeUndefined();
    releaseService();
    await settle();
    expect(services).toBeDefined();
    expect(proxyImage).toBeNull();
    releaseProxy();
    await settle();
    expect(proxyImage).toBe(PROD.proxyImage);
  });
});
