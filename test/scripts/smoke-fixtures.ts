/**
 * What smoke's tests feed it: the outputs of the REAL program (index.ts) rendered under the
 * mock runtime (scripts/lib/render.ts), with the values only a cloud knows filled in, the way
 * `pulumi stack output --json` prints them after an up. The mocks answer those values as
 * `computed(<resource>.<field>)` (scripts/lib/mocks.ts); `deployed` replaces each with a
 * value of the field's real form (an NLB DNS name, an instance id, an address), or with the
 * value a test gives for it. The shape (which keys, nested how) is the program's own.
 */
import { createHash } from "node:crypto";

const hex = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n);

/** A value of the field's real form for `computed(<name>.<field>)`; never an address traffic is sent to. */
function cloudValue(name: string, field: string): string {
  if (field === "dnsName") return `${name}-${hex(name, 16)}.elb.eu-west-1.amazonaws.com`;
  // A target group (`<base>-<port>`, components/front-door.ts targetGroupName): arn:...:targetgroup/<name>/<16 hex>.
  if (field === "arn" && /-\d+$/.test(name)) return `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/${name}/${hex(name, 16)}`;
  if (field === "id" && /-instance$/.test(name)) return `i-0${hex(name, 16)}`;
  // TEST-NET-2 (RFC 5737): a form, never dialled (smoke no longer asks a host's public address).
  if (field === "publicIp") return `198.51.100.${parseInt(hex(name, 2), 16) % 250}`;
  if (field === "privateIp") return `10.0.0.${parseInt(hex(name, 2), 16) % 250}`;
  return `${name}-${field}-${hex(`${name}.${field}`, 8)}`;
}

/**
 * The rendered outputs (or any rendered value) with every `computed(<name>.<field>)` replaced:
 * by `given["<name>.<field>"]` when the test names it, else by cloudValue. Embedded ones
 * too (an endpoint is `computed(...):80`).
 */
export function deployed<T>(value: T, given: Record<string, string> = {}): T {
  const fill = (v: unknown): unknown => {
    // computed(<name>.<field>) as scripts/lib/mocks.ts computed() writes it (its fabricated keys and volume ids stay).
    if (typeof v === "string") return v.replace(/computed\(([^()]*)\.([^.()]+)\)/g, (_m, name: string, field: string) => given[`${name}.${field}`] ?? cloudValue(name, field));
    if (Array.isArray(v)) return v.map(fill);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  return fill(value) as T;
}
