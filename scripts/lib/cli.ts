/**
 * What every dockyard command shares: the exit codes, the one error type that carries
 * its exit code, how an error is reported (one line for an operator's mistake, never a
 * stack trace), common options, and running a command on its own.
 */
import type { Argv, CommandModule } from "yargs";
import { PlacementError } from "../../components/placement";
import { ConfigError } from "../../stacks";
import { LedgerError } from "./ledger";
import { RenderError } from "./render";
import { StackFileError } from "./stackfile";

/** Where a command writes: its result to stdout, progress and errors to stderr (tests pass their own). */
export type Write = (s: string) => void;
export const toStdout: Write = (s) => void process.stdout.write(s);
export const toStderr: Write = (s) => void process.stderr.write(s);

/** Exit codes shared by every command: 0 ok, 1 failure or difference found, 2 bad usage or bad input. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** A failure with the exit code the CLI returns: EXIT.failure (refused or failed) or EXIT.usage (bad usage or input). */
export class DockyardError extends Error {
  constructor(
    message: string,
    public readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = "DockyardError";
  }
}

/**
 * The exit code for an error: its own for a DockyardError; bad input (2) for a
 * configuration or placement the schema refused; 1 for anything else.
 */
export function exitCodeOf(e: unknown): number {
  if (e instanceof DockyardError) return e.exitCode;
  // A placement the schema let through but the fleet cannot make is bad input too.
  if (e instanceof ConfigError || e instanceof PlacementError) return EXIT.usage;
  return EXIT.failure;
}

/** Runs a command's body; an error becomes its report on `err` and its exit code (reportError). */
export async function reported(err: Write, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    return reportError(e, err);
  }
}

/** Errors whose message is the whole story for an operator: printed without a stack trace. */
function isExpected(e: unknown): e is Error {
  return e instanceof DockyardError || e instanceof ConfigError || e instanceof PlacementError || e instanceof RenderError || e instanceof LedgerError || e instanceof StackFileError;
}

/** Prints an error the way every command does and returns its exit code (exitCodeOf). */
export function reportError(e: unknown, write: Write = toStderr): number {
  write(`${isExpected(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return exitCodeOf(e);
}

/** Options that point a render at other stack files or another environment definition. */
export function withSourceOptions<T>(y: Argv<T>) {
  return y
    .option("stacks-dir", { type: "string", describe: "Directory with the Pulumi.<stack>.yaml files (default: stacks/)" })
    .option("environment", { type: "string", describe: "Environment definition to use instead of stacks/environment.yaml" })
    // Tests render a small fixture program instead of index.ts.
    .option("program", { type: "string", hidden: true, describe: "Program to run instead of index.ts" });
}

/** Runs one command on its own (`tsx scripts/<command>.ts ...`), with the CLI's usage-error exit code. */
export async function standalone(cmd: CommandModule<object, never>, argv: string[]): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const yargs = require("yargs") as typeof import("yargs");
  await yargs(argv)
    .scriptName(`dockyard ${String(cmd.command).split(" ")[0]}`)
    .command({ ...cmd, command: String(cmd.command).replace(/^\S+/, "$0") } as CommandModule<object, never>)
    .strict()
    .help()
    .fail((msg, err) => {
      process.stderr.write(`error: ${msg ?? err?.message}\n`);
      process.exit(2);
    })
    .parseAsync();
}


/**
 * A reader that closed the pipe early (`dockyard plan prod | head`) ends the command
 * quietly, as SIGPIPE ends a Unix tool: exit 141 (128 + SIGPIPE), no stack trace. Node
 * ignores SIGPIPE and reports the closed pipe as an EPIPE 'error' on stdout instead,
 * which, unhandled, crashes with a trace.
 */
export function quietOnClosedStdout(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(128 + 13);
    throw e;
  });
}
