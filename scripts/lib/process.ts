/**
 * One runner for the external programs the operator's CLI drives and reads the answer of
 * (ssh to a host: scripts/lib/remote.ts; the AWS CLI: scripts/lib/aws.ts): argv, stdin,
 * a timeout, and what came back.
 */
import { spawn } from "node:child_process";

/** How a program ended. */
export interface ProcessResult {
  /** Its exit status (null: killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Killed at the timeout. */
  timedOut: boolean;
  /** The program could not be started at all (not installed, not on PATH). */
  spawnError?: string;
}

/**
 * Runs argv[0] (looked up on PATH) with the rest as its arguments, `stdin` on its stdin;
 * SIGTERM at `timeoutMs`, SIGKILL 2 s later. It inherits this process's environment (the
 * ssh agent, the AWS credentials). `cannotRun` says why a program that could not be
 * started matters, from the spawn error's code (ENOENT: not on PATH).
 */
export function runProcess(argv: string[], opts: { stdin?: string; timeoutMs: number; cannotRun: (code: string) => string }): Promise<ProcessResult> {
  const [program, ...args] = argv;
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 2_000).unref();
    }, opts.timeoutMs);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    // A program gone before reading its stdin is reported by its exit, not here.
    child.stdin.on("error", () => undefined);
    const done = (code: number | null, spawnError?: string) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), timedOut, ...(spawnError ? { spawnError } : {}) });
    };
    child.on("error", (e) => done(null, opts.cannotRun((e as NodeJS.ErrnoException).code ?? e.message)));
    child.on("close", (code) => done(code));
    child.stdin.end(opts.stdin ?? "");
  });
}

/** The last non-empty line of a program's output. */
export const lastLine = (s: string) => s.trim().split("\n").filter(Boolean).pop()?.trim() ?? "";
