/**
 * Issue 24 item 6: a host's zone must not move when the region's default subnets change.
 *
 * An EBS volume's availability_zone is ForceNew (terraform-provider-aws
 * internal/service/ec2/ebs_volume.go, resourceEBSVolume: AttrAvailabilityZone Required,
 * ForceNew), and the data volume is retainOnDelete: a host whose zone moves gets a new,
 * blank data volume, the old one is dropped from the stack, and its services start empty
 * with no error. So the whole program (index.ts, mock runtime) is rendered in accounts
 * whose default VPC has other default subnets (test/fixtures/subnets-program.ts answers
 * getSubnets/getSubnet as EC2 would), and no existing host may get another volume zone or
 * another subnet; a subnet gone from a host's zone is an error, never a move.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import * as YAML from "yaml";
import { readStackFile } from "../../stacks";
import { buildPlan, formatPlan, renderStack, RenderError, type Rendered } from "../../scripts/lib/render";

const PROGRAM = path.join(__dirname, "..", "fixtures", "subnets-program.ts");
const A = "subnet-0aaa=eu-west-1a";
const B = "subnet-0bbb=eu-west-1b";
const C = "subnet-0ccc=eu-west-1c";
const D = "subnet-0ddd=eu-west-1d";

/** Renders prod with four app hosts (host 4 wraps around the three zones) in a VPC with these default subnets. */
async function renderProd(subnets: string[], zones?: string[]): Promise<Rendered> {
  const raw = readStackFile("prod");
  const config = structuredClone(raw.config) as Record<string, any>;
  config["dockyard:hostGroups"].app.count = 4;
  if (zones) config["dockyard:zones"] = zones;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dockyard-zones-"));
  const before = process.env.DOCKYARD_TEST_SUBNETS;
  process.env.DOCKYARD_TEST_SUBNETS = subnets.join(",");
  try {
    fs.writeFileSync(path.join(dir, "Pulumi.prod.yaml"), YAML.stringify({ ...raw.other, config }));
    return await renderStack("prod", { stacksDir: dir, program: PROGRAM });
  } finally {
    if (before === undefined) delete process.env.DOCKYARD_TEST_SUBNETS;
    else process.env.DOCKYARD_TEST_SUBNETS = before;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Each host's data volume zone and instance subnet, as rendered. */
function placement(r: Rendered): Record<string, { volumeZone: unknown; subnet: unknown }> {
  const of = (type: string, name: string) => r.resources.find((x) => x.type === type && x.name === name)!.inputs;
  const hosts = r.resources.filter((x) => x.type === "dockyard:index:DockerHost").map((x) => x.name);
  return Object.fromEntries(
    hosts.map((h) => [h, { volumeZone: of("aws:ebs/volume:Volume", `${h}-data`).availabilityZone, subnet: of("aws:ec2/instance:Instance", `${h}-instance`).subnetId }]),
  );
}

describe("a host's zone when the region's default subnets change (issue 24 item 6)", () => {
  const today = renderProd([A, B, C]);

  it("places each host in the zone the stack file names for its ordinal, its data volume beside it", async () => {
    expect(placement(await today)).toEqual({
      "prod-app-1": { volumeZone: "eu-west-1a", subnet: "subnet-0aaa" },
      "prod-app-2": { volumeZone: "eu-west-1b", subnet: "subnet-0bbb" },
      "prod-app-3": { volumeZone: "eu-west-1c", subnet: "subnet-0ccc" },
      "prod-app-4": { volumeZone: "eu-west-1a", subnet: "subnet-0aaa" },
    });
  });

  it("a default subnet added in a new zone moves no host (ordinal mod 4 would move prod-app-4 to eu-west-1d)", async () => {
    expect(placement(await renderProd([A, B, C, D]))).toEqual(placement(await today));
  });

  it("the same subnets listed in another order move no host", async () => {
    expect(placement(await renderProd([C, A, B]))).toEqual(placement(await today));
  });

  it("a default subnet gone from a host's zone stops the render, naming the host, its zone and the knob (never a silent move)", async () => {
    const err = await renderProd([A, C]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RenderError);
    const message = (err as Error).message;
    expect(message).toMatch(/prod-app-2/);
    expect(message).toMatch(/eu-west-1b/);
    expect(message).toMatch(/dockyard:zones/);
    expect(message).toMatch(/create-default-subnet --availability-zone eu-west-1b/);
  });

  it("moving hosts is a dockyard:zones change: only the hosts whose zone changed move, and plan shows each one's data volume in its new zone", async () => {
    const moved = await renderProd([A, B, C, D], ["eu-west-1a", "eu-west-1b", "eu-west-1d"]);
    expect(placement(moved)).toEqual({
      ...placement(await today),
      "prod-app-3": { volumeZone: "eu-west-1d", subnet: "subnet-0ddd" },
    });
    const plan = formatPlan(buildPlan(moved));
    const volume = (host: string) => plan.split("\n").slice(plan.split("\n").findIndex((l) => l.includes(`${host}-data`))).slice(0, 6).join("\n");
    expect(volume("prod-app-3")).toContain("availabilityZone: eu-west-1d");
    expect(volume("prod-app-2")).toContain("availabilityZone: eu-west-1b");
  });
});
