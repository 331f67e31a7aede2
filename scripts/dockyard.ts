/**
 * Dockyard's operator CLI: one entry point, one file per subcommand under scripts/.
 * Exit codes, for every subcommand: 0 ok, 1 failure or difference found, 2 bad usage
 * or bad input.
 *
 *   npm run dockyard -- --help
 *   npm run plan -- dev          (= dockyard plan dev)
 *   npm run diff -- dev prod     (= dockyard diff dev prod)
 */
import yargs, { type CommandModule } from "yargs";
import { hideBin } from "yargs/helpers";
import { devServerCommand } from "./dev-server";
import { diffCommand } from "./diff";
import { pinCommand } from "./pin";
import { EXIT, quietOnClosedStdout, reportError } from "./lib/cli";
import { planCommand } from "./plan";
import { promoteCommand } from "./promote";
import { rollbackCommand } from "./rollback";
import { smokeCommand } from "./smoke";
import { upCommand } from "./up";

/** Every subcommand; add new ones here, one line each. */
const COMMANDS: CommandModule<object, any>[] = [
  planCommand,
  diffCommand,
  promoteCommand,
  rollbackCommand,
  pinCommand,
  smokeCommand,
  devServerCommand,
  upCommand,
];

export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName("dockyard")
    .usage("$0 <command> [options]\n\nOperate Dockyard stacks: dev, test, prod and your own.")
    .strict()
    .demandCommand(1, "Name a command: plan, diff, ... (see --help)")
    .recommendCommands()
    .help()
    .alias("h", "help")
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      // Errors thrown by a handler: their own exit code (reportError); everything yargs rejects is usage (2).
      if (err) process.exit(reportError(err));
      process.stderr.write(`${msg}\n\nRun with --help for usage.\n`);
      process.exit(EXIT.usage);
    });
  for (const c of COMMANDS) cli = cli.command(c);
  await cli.parseAsync();
}

if (require.main === module) {
  quietOnClosedStdout();
  main(hideBin(process.argv)).catch((e) => process.exit(reportError(e)));
}
