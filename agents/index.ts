/**
 * The registry of agent plugins, by the name used with `--agent-type`.
 */
import type { AgentPlugin } from './types.js';
import { claudeCodePlugin } from './claude-code/index.js';
import { codexPlugin } from './codex/index.js';

const plugins: readonly AgentPlugin[] = [claudeCodePlugin, codexPlugin];

/** Names accepted by `--agent-type`, in registration order. */
export const agentTypes: string[] = plugins.map((p) => p.name);

/** The plugin named `name` (exact, case-sensitive match), or undefined when there is none. */
export function getAgentPlugin(name: string): AgentPlugin | undefined {
  return plugins.find((p) => p.name === name);
}
