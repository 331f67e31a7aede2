// Dockyard: one program for every stack. Load the spec, build the components, export outputs.
import { loadSpecFromPulumi } from "./stacks";

const spec = loadSpecFromPulumi();

export const stack = spec.stack;
export const engine = { channel: spec.engine.channel, version: spec.engine.version ?? "distro default" };
