/**
 * The registry of agent plugins, by the name used with `--agent-type`.
 */
import type { AgentPlugin } from './types.js';
import { claudeCodePlugin } from './claude-code/index.js';
import { codexPlugin } from './codex/index.js';
import { copilotPlugin } from './copilot/index.js';
import { execPlugin } from './exec/index.js';
import { geminiPlugin } from './gemini/index.js';
import { openCodePlugin } from './opencode/index.js';
import { qwenPlugin } from './qwen/index.js';

const plugins: readonly AgentPlugin[] = [claudeCodePlugin, codexPlugin, openCodePlugin, geminiPlugin, qwenPlugin, copilotPlugin, execPlugin];

/** Names accepted by `--agent-type`, in registration order. */
export const agentTypes: string[] = plugins.map((p) => p.name);

/** The plugin named `name` (exact, case-sensitive match), or undefined when there is none. */
export function getAgentPlugin(name: string): AgentPlugin | undefined {
  return plugins.find((p) => p.name === name);
}
