/**
 * The shapes of a run's configuration: {@link RunConfig}, what `loadConfig` (load.ts) returns, and the value types its
 * settings parse into.
 */
import type { BackendName } from '../backends/types.js';

/**
 * Prices of a model's tokens, in US dollars per million tokens of each kind: `input` (not from the cache), `output`
 * (reasoning included), and `cacheRead` / `cacheWrite` (the input price when absent).
 */
export interface ModelPrices {
  input: number;
  output: number;
  cacheRead?: number;
  cacheWrite?: number;
}

/** A `--prices` table: the prices of each model, by the model name the agent reports (or `--model`). */
export type PriceTable = Record<string, ModelPrices>;

/** How the workspace reaches the container: bind mount, or copied in (and the commits bundled out). */
export type WorkspaceMode = 'mount' | 'copy';

/** The validated configuration of one run. */
export interface RunConfig {
  /** Absolute path of the project (the repository to work on). */
  project: string;
  /** Branch to create; undefined means generate `agent-task-<timestamp>`. */
  branch?: string;
  /** The task text (never contains NUL). */
  task: string;
  agentType: string;
  apiKey?: string;
  oauthToken?: string;
  baseUrl?: string;
  /** IANA time zone for the container's TZ. */
  timezone: string;
  /** Host-enforced limit on the agent's run, in seconds. */
  timeoutSeconds: number;
  /** Docker daemon URL (`unix://`, `tcp://`, `ssh://`); undefined means the local socket. */
  dockerHost?: string;
  forceRebuild: boolean;
  debug: boolean;
  json: boolean;
  model?: string;
  maxTurns?: number;
  /** Extra CA certificates: the file's path and PEM contents. */
  caCert?: { path: string; pem: string };
  /** Extra host names or IPs the agent may reach, besides the model API host. */
  allowHosts: string[];
  /** The `.env` file that was read, if any. */
  envFile?: string;
  /** Requested workspace mode; undefined = mount for a local daemon, copy for a remote one. */
  workspace?: WorkspaceMode;
  /** Where the agent runs: the daemon's containers (`local`), or jobs on the swarm it manages (`swarm`). */
  backend: BackendName;
  /** `--backend swarm`: the registry (`host:port`) the manager pushes to and the nodes pull from. */
  registry?: string;
  /** `--backend swarm`: placement constraints of the run's jobs (`node.labels.size==large`). */
  placement: string[];
  /** TLS material for a tcp:// daemon, from --tls-ca/--tls-cert/--tls-key (PEM file paths). */
  tls: { ca?: string; cert?: string; key?: string };
  /** Allow plain (unauthenticated) tcp:// to a non-loopback daemon. */
  insecureDocker: boolean;
  /** Private key file for ssh:// daemons (else the ssh agent and ~/.ssh/id_*). */
  sshKey?: string;
  /** The container's memory limit, in bytes (swap included: no extra swap). */
  memoryBytes: number;
  /** The container's CPU limit, in CPUs; undefined = no limit. */
  cpus?: number;
  /** Most processes (and threads) the container may have. */
  pidsLimit: number;
  /** Longest an image build may take, in seconds. */
  buildTimeoutSeconds: number;
  /**
   * The project's own Dockerfile (built FROM the tool's image): `--dockerfile`, else
   * `<project>/.agent-worker/Dockerfile` when it exists; undefined = the tool's image as is.
   */
  dockerfile?: string;
  /** Command run (bash -c, in /workspace, as the agent's user) in the agent's container after the agent ends. */
  verify?: string;
  /** Text appended to the agent's system prompt: --append-system-prompt, then the --persona file's text. */
  appendSystemPrompt?: string;
  /** The --persona file that was read, if any. */
  persona?: string;
  /** MCP server configuration for the agent: the file's path and its JSON text. */
  mcpConfig?: { path: string; json: string; urlHosts: string[] };
  /** The --prices table: prices a run's tokens when the agent reports no cost. */
  prices?: PriceTable;
  /** --agent-command as argv (the exec agent only). */
  agentCommand?: string[];
  /** Spending limit handed to the agent, in US dollars. */
  maxBudgetUsd?: number;
  /** No progress on stderr (the report and errors still print). */
  quiet: boolean;
  /**
   * The commit the branch starts from (a batch task's `base`, or its repository's HEAD when the batch started);
   * undefined = HEAD now (or the base commit of the run holding the checkout).
   */
  baseCommit?: string;
}
