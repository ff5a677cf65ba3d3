/**
 * Parser for OpenCode's `run --format json` output.
 *
 * Format source: `opencode run --format json …` (OpenCode 1.18.33; written by `packages/opencode/src/cli/cmd/run.ts`
 * in anomalyco/opencode), one JSON object per line, each `{"type","timestamp","sessionID",…}`:
 * - `step_start` `{part:{type:"step-start",messageID,…}}` when a model call begins;
 * - `text` `{part:{type:"text",text,time}}` once a text part is complete;
 * - `tool_use` `{part:{type:"tool",tool,callID,state:{status,input,output,error,title}}}` once a tool call has
 *   completed or failed (`state.status` `completed` or `error`);
 * - `step_finish` `{part:{type:"step-finish",reason,tokens:{input,output,reasoning,cache:{read,write}},cost}}` when a
 *   model call ends; `reason` is the call's finish reason (`tool-calls`: OpenCode calls the model again; anything but
 *   `tool-calls`/`unknown`, e.g. `stop`: its loop ends);
 * - `reasoning` (only with `--thinking`), ignored;
 * - `error` `{error:{name,data:{message,…}}}` when the session fails (the last line of a failed run, exit 1);
 * - `done` `{reason:"idle",rejected}` at the very end, from versions newer than 1.18.33 (not in its samples).
 *
 * Only the main session's parts are written: the model calls of subagents (the `task` tool) and the title call are
 * not in the stream, so their tokens and cost are not counted. No model, CLI version or turn-limit signal is written
 * (OpenCode's agent `steps` limit makes the model answer without tools, which looks like any other end).
 *
 * Real samples: tests use `opencode-1.18.33-run.jsonl` and `opencode-1.18.33-run-500.jsonl`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, finite, num, oneLine, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

/** Finish reasons after which OpenCode calls the model again. */
const CONTINUING_REASONS = new Set(['tool-calls', 'unknown']);

/**
 * Creates a parser for one run of `opencode run --format json`.
 *
 * Events: `init` from the first line that names the session (`sessionID`); `turn` per `step_finish` (turn number =
 * steps finished, tokens and cost = sums so far); `tool` per `tool_use` (see {@link summarizeOpenCodeTool}); `text` per
 * non-empty `text` part (whitespace collapsed, truncated to {@link TEXT_EVENT_MAX_CHARS}); `result` when the run ends:
 * at a `step_finish` whose reason ends OpenCode's loop (subtype `success` for `stop`, else the reason, e.g. `length`),
 * at `done` if no result was given since the last `step_start`, and at every `error` (subtype `error`).
 *
 * Tokens (normalised), summed over every `step_finish`: input = `tokens.input` (OpenCode excludes the cache from it);
 * cacheRead = `tokens.cache.read`; cacheWrite = `tokens.cache.write`; output = `tokens.output` + `tokens.reasoning`
 * (OpenCode excludes reasoning from output); reasoning = `tokens.reasoning`. Cost = sum of `part.cost` (computed by
 * OpenCode from the prices in its configuration), undefined when no step reported one. Turns = `step_finish` count.
 *
 * Outcome: `fromResult` once the run ended as above (an `error`, a loop-ending `step_finish` not followed by another
 * `step_start`, or `done`); `isError` when an `error` line came, with `resultText` = its `error.data.message` (else
 * `error.message`, else `error.name`); otherwise `resultText` = the last text part. A stream cut before its end gives
 * `fromResult: false` with the tokens, cost and turns of the steps that finished, and no result text.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length.
 */
export function createOpenCodeParser(): AgentStreamParser {
  let sessionId: string | undefined;
  const sum = { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0 };
  let costUsd: number | undefined;
  let steps = 0;
  let lastText: string | undefined;
  let errorText: string | undefined;
  let isError = false;
  /** The end of the run, once seen: the result subtype. Cleared by a new step. */
  let ended: string | undefined;

  const tokens = (): TokenUsage => makeTokenUsage(sum.input, sum.output + sum.reasoning, sum.cacheRead, sum.cacheWrite, sum.reasoning);

  function onStepFinish(part: JsonObject): AgentEvent[] {
    const t = asObject(part.tokens);
    if (t) {
      const cache = asObject(t.cache);
      sum.input += num(t.input);
      sum.output += num(t.output);
      sum.reasoning += num(t.reasoning);
      sum.cacheRead += num(cache?.read);
      sum.cacheWrite += num(cache?.write);
    }
    const cost = finite(part.cost);
    if (cost !== undefined) costUsd = (costUsd ?? 0) + cost;
    steps += 1;
    const events: AgentEvent[] = [{ kind: 'turn', turn: steps, tokens: tokens(), costUsd }];
    const reason = str(part.reason);
    if (reason !== undefined && !CONTINUING_REASONS.has(reason) && !isError && ended === undefined) {
      ended = reason === 'stop' ? 'success' : reason;
      events.push({ kind: 'result', subtype: ended, isError: false });
    }
    return events;
  }

  function onError(obj: JsonObject): AgentEvent[] {
    const error = asObject(obj.error);
    const data = asObject(error?.data);
    errorText = str(data?.message) ?? str(error?.message) ?? str(error?.name) ?? errorText;
    isError = true;
    ended = 'error';
    return [{ kind: 'result', subtype: 'error', isError: true }];
  }

  return {
    push(line: string): AgentEvent[] {
      // A text part may be the final answer: parsed whole even when long.
      const obj = parseJsonLine(line, (bounded) => bounded.type === 'text');
      if (!obj) return [];
      const events: AgentEvent[] = [];
      try {
        const id = str(obj.sessionID);
        if (sessionId === undefined && id !== undefined) {
          sessionId = id;
          events.push({ kind: 'init', sessionId });
        }
        const part = asObject(obj.part);
        switch (obj.type) {
          case 'step_start':
            if (!isError) ended = undefined;
            break;
          case 'step_finish':
            if (part) events.push(...onStepFinish(part));
            break;
          case 'tool_use': {
            const name = str(part?.tool);
            if (name !== undefined) events.push({ kind: 'tool', name, summary: summarizeOpenCodeTool(name, asObject(part?.state)?.input) });
            break;
          }
          case 'text': {
            const text = str(part?.text);
            if (text !== undefined && text.trim() !== '') {
              lastText = text;
              events.push({ kind: 'text', text: oneLine(text, TEXT_EVENT_MAX_CHARS) });
            }
            break;
          }
          case 'error':
            events.push(...onError(obj));
            break;
          case 'done':
            if (ended === undefined) {
              ended = 'success';
              events.push({ kind: 'result', subtype: ended, isError: false });
            }
            break;
        }
      } catch {
        // Unexpected shapes must never stop the run; the rest of the line is ignored.
      }
      return events;
    },

    outcome(): AgentOutcome {
      const base = { sessionId, turns: steps, tokens: tokens(), costUsd };
      if (ended === undefined) return { ...base, isError: false, fromResult: false };
      return {
        ...base,
        resultText: isError ? errorText : lastText,
        resultSubtype: ended,
        isError,
        fromResult: true,
      };
    },
  };
}

/**
 * A one-line summary of an OpenCode tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS}
 * characters: `bash: <command>`, `read|write|edit|multiedit|patch: <filePath>`, `list: <path>`, `glob|grep: <pattern>`,
 * `webfetch: <url>`, `websearch|codesearch: <query>`, `task: <description>`, `skill: <name>`, `apply_patch: <first
 * file>`, else the tool name (MCP tools are `<server>_<tool>`). `input` is `part.state.input`. Paths under
 * `/workspace` are shown relative.
 */
export function summarizeOpenCodeTool(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  let detail: string | undefined;
  switch (name) {
    case 'bash':
      detail = str(args.command) ?? str(args.description);
      break;
    case 'read':
    case 'write':
    case 'edit':
    case 'multiedit':
    case 'patch':
      detail = mapPath(args.filePath);
      break;
    case 'list':
      detail = mapPath(args.path);
      break;
    case 'glob':
    case 'grep':
      detail = str(args.pattern);
      break;
    case 'webfetch':
      detail = str(args.url);
      break;
    case 'websearch':
    case 'codesearch':
      detail = str(args.query);
      break;
    case 'task':
      detail = str(args.description);
      break;
    case 'skill':
      detail = str(args.name);
      break;
    case 'apply_patch':
      detail = mapPath(firstPatchFile(str(args.patchText)));
      break;
  }
  if (detail === undefined || detail.trim() === '') return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
  return oneLine(`${name}: ${detail}`, TOOL_SUMMARY_MAX_CHARS);
}

function mapPath(value: unknown): string | undefined {
  const path = str(value);
  return path === undefined ? undefined : relativeToWorkspace(path);
}

const PATCH_FILE = /\*\*\* (?:Add|Update|Delete) File: ([^\n]+)/;

/** The first file an `apply_patch` patch text names (`*** Update File: path`), looked for in its first 4 KB. */
function firstPatchFile(patch: string | undefined): string | undefined {
  if (patch === undefined) return undefined;
  return PATCH_FILE.exec(patch.slice(0, 4096))?.[1]?.trim();
}
