import { describe, expect, it } from "vitest";
import * as aws from "@pulumi/aws";
import { useMocks } from "../helpers/pulumi";
import { COMPUTED_RE, isComputed, mockSshPublicKey } from "../../scripts/lib/mocks";

const mocks = useMocks("dev");

describe("the shared mock runtime", () => {
  it("fails loudly, naming the token, on a provider call it does not know", async () => {
    await expect(aws.ec2.getVpcs({})).rejects.toThrow(/unexpected provider call aws:ec2\/getVpcs:getVpcs/);
    expect(mocks.calls.map((c) => c.token)).not.toContain("aws:ec2/getVpcs:getVpcs");
  });

  it("answers known calls and records them", async () => {
    const ami = await aws.ec2.getAmi({ owners: ["136693071363"], mostRecent: true, filters: [{ name: "name", values: ["debian-12-amd64-*"] }] });
    expect(isComputed(ami.id)).toBe(true);
    expect(mocks.calls.at(-1)?.token).toBe("aws:ec2/getAmi:getAmi");
  });

  it("fabricates host keys that are valid OpenSSH keys yet recognisably computed", () => {
    const key = mockSshPublicKey("dev-app-1-host-key");
    expect(key).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=*$/);
    expect(key).not.toBe(mockSshPublicKey("dev-app-2-host-key"));
    expect(`known ${key}`.replace(COMPUTED_RE, "(computed)")).toBe("known (computed)");
    expect(isComputed("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")).toBe(false);
  });
});
