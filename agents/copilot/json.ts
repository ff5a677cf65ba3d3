/**
 * Parser for GitHub Copilot CLI's `--output-format json` output and its `--usage-output-file`.
 *
 * Format source: `copilot -p … --output-format json --usage-output-file FILE` (Copilot CLI 1.0.102). Standard output
 * holds one session event per line, `{"type","data",…,"id","timestamp","parentId","ephemeral"?}` (the event types of
 * github/copilot-sdk `session-events.ts`); those read here:
 * - `session.tools_updated` `{model}` (the model, before the first call), `session.model_change` `{newModel}`, and
 *   `session.start` `{sessionId, copilotVersion, selectedModel}` (not written in `-p` mode by 1.0.102, read if it is);
 * - `assistant.turn_start` / `assistant.turn_end` `{turnId}`: one model call each (retries of a failing call stay in
 *   the same turn, as `assistant.turn_retry`);
 * - `assistant.message` `{messageId, model, content, toolRequests:[{name, arguments}], turnId, parentToolCallId?}`:
 *   the model's answer of a turn (`content` empty when it only calls tools; `parentToolCallId` set for subagents);
 * - `tool.execution_start` `{toolCallId, toolName, arguments}` and `tool.execution_complete` `{success, result}`;
 * - `session.error` `{errorType, message, statusCode}` when the session fails (e.g. the model API kept answering 500);
 * - `result` `{sessionId, exitCode, usage:{premiumRequests, totalApiDurationMs, sessionDurationMs, codeChanges}}`, the
 *   last line (not a session event: no `data`).
 * Streaming deltas (`assistant.message_delta`, `assistant.tool_call_delta`), `model.call_*`, `session.info` and the
 * like are ignored.
 *
 * Standard output carries no token counts (`assistant.usage` is not written): they are only in the usage file, read
 * by {@link parseCopilotUsageFile}. No cost (0 with one's own key), no CLI version, and no turn-limit signal.
 *
 * Real samples: tests use `copilot-1.0.102.jsonl`, `copilot-1.0.102-500.jsonl` and
 * `copilot-1.0.102-usage-output-file.json`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, finite, num, oneLine, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

/** Lines never needed (tool output, streaming deltas, skill lists): skipped unparsed. */
const SKIPPED_PREFIXES = [
  '{"type":"tool.execution_complete"',
  '{"type":"tool.execution_partial_result"',
  '{"type":"assistant.message_delta"',
  '{"type":"assistant.tool_call_delta"',
  '{"type":"assistant.reasoning_delta"',
  '{"type":"session.skills_loaded"',
];

/**
 * Creates a parser for one run of `copilot -p … --output-format json`.
 *
 * Events: `init` when the session id, model or version first becomes known or changes (`session.start`,
 * `session.tools_updated`, `session.model_change`); `turn` per main-agent model answer (an `assistant.message` of a
 * new turn), with zero tokens since standard output has none; `tool` per `tool.execution_start` (see
 * {@link summarizeCopilotTool}); `text` per non-empty `assistant.message` content (whitespace collapsed, truncated to
 * {@link TEXT_EVENT_MAX_CHARS}); `result` from the `result` line (subtype `success` for exit code 0, else `error`).
 *
 * Outcome: tokens are always 0 (take them from the usage file) and cost undefined. Turns = main-agent model answers
 * (distinct `turnId`s of `assistant.message` without `parentToolCallId`): a turn whose calls all failed adds none.
 * With the `result` line: `fromResult: true`, `sessionId` from it, `isError` when `exitCode` is not 0 (or, without an
 * exit code, when a `session.error` came), `resultText` = the last `session.error` message on error, else the last
 * non-empty main-agent message. Without it (stream cut): `fromResult: false`, `isError: false`, no result text.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length.
 */
export function createCopilotParser(): AgentStreamParser {
  let sessionId: string | undefined;
  let model: string | undefined;
  let version: string | undefined;
  const turnKeys = new Set<string>();
  let turns = 0;
  let lastMessage: string | undefined;
  let lastError: string | undefined;
  let result: { isError: boolean; exitCode: number | undefined } | undefined;

  /** An `init` event when any of the three changed. */
  function identify(next: { sessionId?: string; model?: string; version?: string }): AgentEvent[] {
    const changed =
      (next.sessionId !== undefined && next.sessionId !== sessionId) ||
      (next.model !== undefined && next.model !== model) ||
      (next.version !== undefined && next.version !== version);
    sessionId = next.sessionId ?? sessionId;
    model = next.model ?? model;
    version = next.version ?? version;
    return changed ? [{ kind: 'init', sessionId, model, version }] : [];
  }

  function onMessage(data: JsonObject): AgentEvent[] {
    const events: AgentEvent[] = [];
    const mainAgent = data.parentToolCallId === undefined || data.parentToolCallId === null;
    if (mainAgent) {
      events.push(...identify({ model: model === undefined ? str(data.model) : undefined }));
      const turnId = str(data.turnId) ?? str(data.messageId);
      const key = turnId === undefined ? undefined : `${str(data.interactionId) ?? ''}#${turnId}`;
      if (key === undefined || !turnKeys.has(key)) {
        if (key !== undefined) turnKeys.add(key);
        turns += 1;
        events.push({ kind: 'turn', turn: turns, tokens: makeTokenUsage(0, 0, 0, 0, 0) });
      }
    }
    const content = str(data.content);
    if (content !== undefined && content.trim() !== '') {
      if (mainAgent) lastMessage = content;
      events.push({ kind: 'text', text: oneLine(content, TEXT_EVENT_MAX_CHARS) });
    }
    return events;
  }

  function onResult(obj: JsonObject): AgentEvent[] {
    const events = identify({ sessionId: str(obj.sessionId) });
    const exitCode = finite(obj.exitCode);
    const isError = exitCode !== undefined ? exitCode !== 0 : lastError !== undefined;
    result = { isError, exitCode };
    events.push({ kind: 'result', subtype: isError ? 'error' : 'success', isError });
    return events;
  }

  return {
    push(line: string): AgentEvent[] {
      for (const prefix of SKIPPED_PREFIXES) if (line.startsWith(prefix)) return [];
      // The final answer is the result text: an assistant.message line is parsed whole even when long.
      const obj = parseJsonLine(line, (bounded) => bounded.type === 'assistant.message');
      if (!obj) return [];
      try {
        const data = asObject(obj.data) ?? {};
        switch (obj.type) {
          case 'session.start':
            return identify({ sessionId: str(data.sessionId), model: str(data.selectedModel), version: str(data.copilotVersion) });
          case 'session.tools_updated':
            return identify({ model: str(data.model) });
          case 'session.model_change':
            return identify({ model: str(data.newModel) });
          case 'assistant.message':
            return onMessage(data);
          case 'tool.execution_start': {
            const name = str(data.toolName);
            return name === undefined ? [] : [{ kind: 'tool', name, summary: summarizeCopilotTool(name, data.arguments) }];
          }
          case 'session.error':
            lastError = str(data.message) ?? str(data.errorType) ?? lastError;
            return [];
          case 'result':
            return onResult(obj);
        }
      } catch {
        // Unexpected shapes must never stop the run; the line is ignored.
      }
      return [];
    },

    outcome(): AgentOutcome {
      const base = { version, model, sessionId, turns, tokens: makeTokenUsage(0, 0, 0, 0, 0) };
      if (!result) return { ...base, isError: false, fromResult: false };
      return {
        ...base,
        resultText: result.isError ? lastError : lastMessage,
        resultSubtype: result.isError ? 'error' : 'success',
        isError: result.isError,
        fromResult: true,
      };
    },
  };
}

/**
 * Reads the JSON file Copilot CLI writes with `--usage-output-file`: tokens summed over `modelMetrics.<model>.usage`
 * `{inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens, reasoningTokens}` and normalised:
 * - input = `inputTokens` − `cacheReadTokens`: Copilot's `inputTokens` counts the cache reads (the 1.0.102 sample has
 *   3000 input with 1800 read from the cache, for a server that served 3000 input tokens of which 1800 cached; its
 *   `lastCallInputTokens` 2000 is the last call's whole prompt, 1500 of it cached);
 * - cacheRead = `cacheReadTokens`; cacheWrite = `cacheWriteTokens`, taken as not part of `inputTokens` (0 in every
 *   sample, so unconfirmed);
 * - output = `outputTokens` (its 30 include the 5 `reasoningTokens`); reasoning = `reasoningTokens`.
 * `model` = `currentModel`, else the model with the most tokens; `requests` = sum of
 * `modelMetrics.<model>.requests.count` (undefined when none says). Undefined when `text` is not a JSON object with a
 * `modelMetrics` object.
 */
export function parseCopilotUsageFile(text: string): { tokens: TokenUsage; model?: string; requests?: number } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const file = asObject(parsed);
  const metrics = asObject(file?.modelMetrics);
  if (!file || !metrics) return undefined;
  const sum = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, reasoning: 0 };
  let requests: number | undefined;
  let busiest: { model: string; total: number } | undefined;
  for (const [name, raw] of Object.entries(metrics)) {
    const entry = asObject(raw);
    const usage = asObject(entry?.usage);
    const count = finite(asObject(entry?.requests)?.count);
    if (count !== undefined) requests = (requests ?? 0) + count;
    if (!usage) continue;
    const input = num(usage.inputTokens);
    const cacheRead = num(usage.cacheReadTokens);
    const output = num(usage.outputTokens);
    const cacheWrite = num(usage.cacheWriteTokens);
    sum.input += Math.max(0, input - cacheRead);
    sum.cacheRead += cacheRead;
    sum.output += output;
    sum.cacheWrite += cacheWrite;
    sum.reasoning += num(usage.reasoningTokens);
    const total = input + output + cacheWrite;
    if (!busiest || total > busiest.total) busiest = { model: name, total };
  }
  const tokens = makeTokenUsage(sum.input, sum.output, sum.cacheRead, sum.cacheWrite, sum.reasoning);
  const model = str(file.currentModel) ?? busiest?.model;
  return { tokens, ...(model !== undefined && { model }), ...(requests !== undefined && { requests }) };
}

/**
 * A one-line summary of a Copilot CLI tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS}
 * characters: `bash: <command>`, `view|create|edit|str_replace|insert|str_replace_editor: <path>`,
 * `grep|rg|glob: <pattern>`, `web_fetch: <url>`, `web_search: <query>`, `task: <description>`,
 * `report_intent: <intent>`; other tools (MCP ones included) show the first of their `path`, `command`, `pattern`,
 * `url`, `query` or `description` arguments, else the name. `input` is the call's `arguments`. Paths under
 * `/workspace` are shown relative.
 */
export function summarizeCopilotTool(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  let detail: string | undefined;
  switch (name) {
    case 'bash':
      detail = str(args.command) ?? str(args.description);
      break;
    case 'view':
    case 'create':
    case 'edit':
    case 'str_replace':
    case 'insert':
    case 'str_replace_editor':
      detail = mapPath(args.path);
      break;
    case 'grep':
    case 'rg':
    case 'glob':
      detail = str(args.pattern);
      break;
    case 'web_fetch':
      detail = str(args.url);
      break;
    case 'web_search':
      detail = str(args.query);
      break;
    case 'task':
      detail = str(args.description);
      break;
    case 'report_intent':
      detail = str(args.intent);
      break;
    default:
      detail = mapPath(args.path) ?? mapPath(args.file_path) ?? str(args.command) ?? str(args.pattern) ?? str(args.url) ?? str(args.query) ?? str(args.description);
  }
  if (detail === undefined || detail.trim() === '') return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
  return oneLine(`${name}: ${detail}`, TOOL_SUMMARY_MAX_CHARS);
}

function mapPath(value: unknown): string | undefined {
  const path = str(value);
  return path === undefined ? undefined : relativeToWorkspace(path);
}
