/**
 * The run's configuration, one entry point for the rest of the code:
 * - config/settings.ts: every setting once — flag, environment variable, parser, default, help group ({@link SETTINGS});
 * - config/load.ts: {@link loadConfig}, flags > environment > `.env` > defaults, then the rules between settings;
 * - config/values.ts: the parsers and checks of single values;
 * - config/types.ts: {@link RunConfig} and the shapes of its values.
 */
export { loadConfig, type ConfigContext } from './config/load.js';
export {
  DEFAULT_BUILD_TIMEOUT_SECONDS,
  DEFAULT_MEMORY,
  DEFAULT_PIDS_LIMIT,
  PROJECT_DOCKERFILE,
  SETTING_GROUPS,
  SETTINGS,
  type RawFlags,
  type SettingSpec,
} from './config/settings.js';
export { checkDockerHost, checkHttpUrl, checkMcpConfig, MAX_DURATION_SECONDS, mcpUrlHosts, parseAgentCommand, parsePriceTable, parseSize } from './config/values.js';
export type { ModelPrices, PriceTable, RunConfig, WorkspaceMode } from './config/types.js';
