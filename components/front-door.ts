/**
 * FrontDoor: the one address clients use for a host group's published services, a network
 * load balancer over the group's EC2 hosts that drains a host which cannot serve.
 *
 *  - internet-facing, in every default subnet of the region (one per AZ), cross-zone on;
 *  - a security group of its own: the published ports from `ingressCidrs`; the hosts accept
 *    those ports from this group only (components/host.ts ingressRules);
 *  - per published port a TCP (or, with a certificate, TLS) listener forwarding to a TCP
 *    target group of the hosts, health-checked over HTTP at the host proxy's MONITOR_PATH
 *    on the same port: 200 while that host has a healthy replica of the service, 503 when it
 *    has none, no answer when the host, its engine or its proxy is gone.
 *
 * The pure helpers (names, the health check and its worst case) are unit-tested without
 * Pulumi; the component only wires resources.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { MONITOR_PATH } from "./proxy";

// ---------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------

/**
 * Longest base name: the load balancer is autonamed `<base>-nlb` plus Pulumi's "-" and 7
 * random characters, and ELB names end at 32 (terraform-provider-aws
 * internal/service/elbv2/validate.go validName); a target group is named `<base>-<port>`.
 */
export const FRONT_DOOR_BASE_MAX = 32 - "-nlb".length - 8;

/**
 * The base of a group's front door names: `<stack>-<group>`, or when that is longer than
 * FRONT_DOOR_BASE_MAX its start and a hash of the whole (stable, unique per stack and
 * group). ELB names are a-z, 0-9 and '-', may not end with '-' nor begin with "internal-"
 * (validate.go validName, validTargetGroupName); stack and group names are already
 * lower-case letters, digits and '-'.
 */
export function frontDoorBaseName(stack: string, group: string): string {
  let full = `${stack}-${group}`;
  if (/^internal-/.test(full)) full = `dy-${full}`;
  if (full.length <= FRONT_DOOR_BASE_MAX) return full;
  const hash = createHash("sha256").update(`${stack}\n${group}`).digest("hex").slice(0, 6);
  return `${full.slice(0, FRONT_DOOR_BASE_MAX - hash.length - 1).replace(/-+$/, "")}-${hash}`;
}

/**
 * A target group's name, set explicitly (not autonamed): every input that replaces a target
 * group (name, port, protocol, target type, VPC: ForceNew in target_group.go) is fixed per
 * stack, group and port, so a new port is a new name and an old group is never replaced
 * under its own name.
 */
export function targetGroupName(base: string, port: number): string {
  return `${base}-${port}`;
}

/**
 * The target groups' health check and how long a dead host keeps getting connections.
 * NLB target groups accept interval 5-300 s, thresholds 2-10, timeout 2-120 s
 * (target_group.go health_check). Interval 10 s, 2 failures, timeout 5 s: a host whose
 * proxy answers 503 (no healthy replica) is out after 2 failed checks; a host that does not
 * answer at all (dead VM, dead engine, dead proxy) after 2 timed-out checks.
 */
export const HEALTH_CHECK = {
  enabled: true,
  protocol: "HTTP",
  port: "traffic-port",
  path: MONITOR_PATH,
  matcher: "200",
  interval: 10,
  timeout: 5,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
} as const;

/**
 * Seconds a target keeps its connections after it is deregistered (a host removed or its
 * instance replaced): its proxy finishes in-flight requests for at most `hard-stop-after
 * 30s` (components/proxy.ts) once stopped, so 30 s covers them; the default, 300 s, would
 * hold every host replacement for five minutes.
 */
export const DEREGISTRATION_DELAY_SECONDS = 30;

/**
 * The worst-case seconds between a host failing and the load balancer no longer sending it
 * new connections, from the health check alone: the failure happens just after a passed
 * check, so the first failed check starts one interval later, and it takes
 * `unhealthyThreshold` checks, each failing only at its timeout when nothing answers. A
 * 503 fails at once, so a dead service on a live host is at most `unhealthyThreshold x
 * interval` plus the proxy's own detection (components/proxy.ts: fall x inter).
 */
export function worstCaseDrainSeconds(h: { interval: number; timeout: number; unhealthyThreshold: number } = HEALTH_CHECK): number {
  return h.unhealthyThreshold * h.interval + h.timeout;
}

/**
 * Seconds the load balancer needs to send a host traffic again once its proxy answers the
 * monitor (a replaced host, a new proxy): `healthyThreshold` passed checks, one interval
 * apart. A rollout's next batch waits this long after a host's serving gate saw 200
 * (components/rollout.ts), so the load balancer never has a batch out while the next goes.
 */
export function frontDoorAdmitSeconds(h: { interval: number; healthyThreshold: number } = HEALTH_CHECK): number {
  return h.healthyThreshold * h.interval;
}

/** TLS policy of TLS listeners: TLS 1.3 and 1.2 only (Elastic Load Balancing security policies). */
export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/** One inbound rule of the load balancer's security group, shaped as SecurityGroup's inline `ingress`. */
export interface FrontDoorIngressRule {
  description: string;
  protocol: "tcp";
  fromPort: number;
  toPort: number;
  cidrBlocks: string[];
}

/** The load balancer's inbound rules: each published port from ingressCidrs; none when ingressCidrs is empty. */
export function frontDoorIngressRules(ports: number[], ingressCidrs: string[]): FrontDoorIngressRule[] {
  const cidrs = [...new Set(ingressCidrs)].sort();
  if (cidrs.length === 0) return [];
  return [...new Set(ports)].sort((a, b) => a - b).map((p) => ({ description: `service port ${p} (dockyard:ingressCidrs)`, protocol: "tcp", fromPort: p, toPort: p, cidrBlocks: cidrs }));
}

// ---------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------

/** A host the front door sends traffic to. */
export interface FrontDoorTarget {
  /** The host's name (`<stack>-<group>-<n>`); names its target group attachments. */
  name: string;
  /** Its EC2 instance id (a replaced instance is re-registered). */
  instanceId: pulumi.Input<string>;
}

export interface FrontDoorArgs {
  /** Stack name; part of every name and tag. */
  stack: string;
  /** Pulumi project name; the `dockyard:project` tag. */
  project: string;
  /** The host group this front door serves. */
  group: string;
  /** AWS region; the default VPC and its subnets are looked up there. */
  region: string;
  /** The group's published service ports (publishPort); one listener and target group each. Not empty. */
  ports: number[];
  /** CIDRs allowed to reach the ports (dockyard:ingressCidrs); empty: nobody. */
  ingressCidrs: string[];
  /** ACM certificate ARN (dockyard:certificateArn, same region): TLS listeners; unset: TCP listeners. */
  certificateArn?: string;
}

/**
 * A network load balancer with a listener and target group per published port of one host
 * group. Its name is frontDoorBaseName(stack, group): the load balancer is `<name>-nlb`
 * (autonamed) and each target group `<name>-<port>` (named).
 */
export class FrontDoor extends pulumi.ComponentResource {
  /** The DNS name clients use. */
  public readonly dnsName: pulumi.Output<string>;
  /** The load balancer's security group; hosts accept service ports from it only. */
  public readonly securityGroupId: pulumi.Output<string>;
  /** Published ports, ascending. */
  public readonly ports: number[];
  /** TCP or TLS. */
  public readonly protocol: "TCP" | "TLS";
  /** Target group ARN per port. */
  public readonly targetGroupArns: Record<string, pulumi.Output<string>>;

  private readonly base: string;
  private readonly targetGroups: Map<number, aws.lb.TargetGroup>;
  private readonly region: string;

  constructor(name: string, args: FrontDoorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:FrontDoor", name, {}, opts);
    if (args.ports.length === 0) throw new Error(`stack "${args.stack}": host group ${args.group}: a front door needs a published port`);
    const region = args.region;
    this.region = region;
    this.base = name;
    this.ports = [...new Set(args.ports)].sort((a, b) => a - b);
    this.protocol = args.certificateArn ? "TLS" : "TCP";
    const tags = (part: string) => ({ Name: `${args.stack}-${args.group}-${part}`, "dockyard:stack": args.stack, "dockyard:project": args.project, "dockyard:group": args.group });
    const invokeOpts: pulumi.InvokeOutputOptions = { parent: this };
    const vpc = aws.ec2.getVpcOutput({ default: true, region }, invokeOpts);
    // Every default subnet (one per AZ), not only those hosts are in now: an NLB cannot lose
    // a subnet in place (customizeDiffLoadBalancerNLB forces a new one, with a new DNS name).
    const subnetIds = aws.ec2.getSubnetsOutput({ region, filters: [{ name: "vpc-id", values: [vpc.id] }, { name: "default-for-az", values: ["true"] }] }, invokeOpts).ids.apply((ids) => [...ids].sort());

    // The load balancer's own group, made with it: adding one later replaces an NLB (customizeDiffLoadBalancerNLB).
    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        region,
        vpcId: vpc.id,
        description: `Dockyard front door ${args.stack}-${args.group}: service ports from ingressCidrs`,
        ingress: frontDoorIngressRules(this.ports, args.ingressCidrs),
        // To the hosts' service ports and health checks (the hosts' groups admit this group only).
        egress: [{ description: "to the hosts in the VPC", protocol: "tcp", fromPort: 1, toPort: 65535, cidrBlocks: [vpc.cidrBlock] }],
        tags: tags("front-door-sg"),
      },
      { parent: this },
    );

    // The load balancer clients reach.
    const lb = new aws.lb.LoadBalancer(
      `${name}-nlb`,
      {
        region,
        loadBalancerType: "network",
        internal: false,
        subnets: subnetIds,
        securityGroups: [sg.id],
        enableCrossZoneLoadBalancing: true,
        tags: tags("front-door"),
      },
      { parent: this },
    );

    this.targetGroups = new Map();
    this.targetGroupArns = {};
    for (const port of this.ports) {
      // The hosts serving this port, checked at their proxy's monitor path.
      const tg = new aws.lb.TargetGroup(
        `${name}-${port}`,
        {
          region,
          name: targetGroupName(this.base, port),
          port,
          protocol: "TCP",
          targetType: "instance",
          vpcId: vpc.id,
          healthCheck: { ...HEALTH_CHECK },
          deregistrationDelay: DEREGISTRATION_DELAY_SECONDS,
          tags: tags(`front-door-${port}`),
        },
        { parent: this },
      );
      // Clients on this port: TCP passed through, or TLS ended here with the stack's certificate.
      new aws.lb.Listener(
        `${name}-${port}`,
        {
          region,
          loadBalancerArn: lb.arn,
          port,
          protocol: this.protocol,
          ...(args.certificateArn ? { certificateArn: args.certificateArn, sslPolicy: TLS_POLICY } : {}),
          defaultActions: [{ type: "forward", targetGroupArn: tg.arn }],
          tags: tags(`front-door-${port}`),
        },
        { parent: this },
      );
      this.targetGroups.set(port, tg);
      this.targetGroupArns[String(port)] = tg.arn;
    }

    this.dnsName = lb.dnsName;
    this.securityGroupId = sg.id;
    this.registerOutputs({ dnsName: this.dnsName, securityGroupId: this.securityGroupId, ports: this.ports, protocol: this.protocol, targetGroupArns: this.targetGroupArns });
  }

  /**
   * Registers a host in every port's target group. Separate from the constructor because the
   * hosts' security groups admit this front door's group, so the front door exists first.
   */
  public attach(target: FrontDoorTarget): aws.lb.TargetGroupAttachment[] {
    // deleteBeforeReplace: a replaced instance is deregistered before the new one is
    // registered, and before its host stops it (DockerHost drain), not at the end of the update.
    return [...this.targetGroups].map(
      ([port, tg]) =>
        new aws.lb.TargetGroupAttachment(`${this.base}-${port}-${target.name}`, { region: this.region, targetGroupArn: tg.arn, targetId: target.instanceId, port }, { parent: this, deleteBeforeReplace: true }),
    );
  }
}
