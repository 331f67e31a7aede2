/**
 * StatusAlarms: a stack's hosts tell someone when EC2 finds them broken. EC2's simplified
 * automatic recovery (the instances' default, maintenanceOptions.autoRecovery "default")
 * moves an instance whose system status check fails to healthy hardware by itself; these
 * alarms say that it happened, and catch what recovery does not fix (a failing instance
 * status check: kernel, file system, network configuration). One SNS topic per stack, two
 * alarms per EC2 host.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

/** The EC2 status check metrics alarmed on (AWS/EC2 namespace; 0 or 1 per minute with detailed monitoring). */
export const STATUS_CHECKS = { system: "StatusCheckFailed_System", instance: "StatusCheckFailed_Instance" } as const;

/**
 * An alarm's settings: failed for 2 consecutive minutes (detailed monitoring, 1-minute
 * periods; hosts.ts turns it on), so one missed check does not page anyone. Missing data
 * (an instance stopped or being replaced) keeps the alarm where it is.
 */
export const STATUS_ALARM = { statistic: "Maximum", period: 60, evaluationPeriods: 2, threshold: 1, comparisonOperator: "GreaterThanOrEqualToThreshold", treatMissingData: "missing" } as const;

/** A host the alarms watch. */
export interface AlarmedHost {
  /** `<stack>-<group>-<n>`; names its alarms. */
  name: string;
  /** The EC2 instance (a replaced instance moves the alarms with it). */
  instanceId: pulumi.Input<string>;
}

export interface StatusAlarmsArgs {
  /** Stack name; names the topic. */
  stack: string;
  /** Pulumi project name; the `dockyard:project` tag. */
  project: string;
  /** AWS region of the hosts; topic and alarms live there. */
  region: string;
  /** The stack's EC2 hosts (local hosts have no EC2 status checks). */
  hosts: AlarmedHost[];
}

/** One SNS topic and a system and an instance status-check alarm per EC2 host. */
export class StatusAlarms extends pulumi.ComponentResource {
  /** Subscribe here (email, chat, pager) to hear about failing hosts. */
  public readonly topicArn: pulumi.Output<string>;

  constructor(name: string, args: StatusAlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("dockyard:index:StatusAlarms", name, {}, opts);
    const region = args.region;
    const tags = { "dockyard:stack": args.stack, "dockyard:project": args.project };
    // Where every host alarm of the stack is sent.
    const topic = new aws.sns.Topic(`${name}-topic`, { region, tags: { ...tags, Name: `${args.stack}-host-alarms` } }, { parent: this });
    for (const host of args.hosts) {
      for (const [check, metricName] of Object.entries(STATUS_CHECKS)) {
        // The host's EC2 status check, to the stack's topic (and back to OK).
        new aws.cloudwatch.MetricAlarm(
          `${host.name}-${check}-check`,
          {
            region,
            alarmDescription: `Dockyard host ${host.name}: EC2 ${check} status check failing`,
            namespace: "AWS/EC2",
            metricName,
            dimensions: { InstanceId: host.instanceId },
            ...STATUS_ALARM,
            alarmActions: [topic.arn],
            okActions: [topic.arn],
            tags: { ...tags, "dockyard:host": host.name },
          },
          { parent: this },
        );
      }
    }
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
