/**
 * Parser for Claude Code's stream-json output.
 *
 * Format source: `claude -p --output-format stream-json --verbose` (Claude Code 2.1.x), one JSON object per line:
 * - `{"type":"system","subtype":"init","session_id","model","claude_code_version",…}` once at the start;
 * - `{"type":"assistant","message":{"id","model","content":[…],"usage":{…}},"parent_tool_use_id",…}`, one line per
 *   content block: a message with several blocks arrives as several lines with the same `message.id` and the same
 *   (repeated) `usage`;
 * - `{"type":"user",…}` tool results (ignored here);
 * - `{"type":"result","subtype","is_error","num_turns","result","total_cost_usd","usage","modelUsage",…}` at the end.
 *   `usage` counts the main loop only; `modelUsage` sums every model call (subagents, helper models) and is preferred.
 *
 * Real samples: tests use `claude-2.1.330-success.stream.jsonl` and `claude-2.1.330-error_max_turns.stream.jsonl`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, finite, isDefined, mapDefined, num, oneLine, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

export { CONTAINER_WORKSPACE, LONG_LINE_CHARS, parseBounded, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS } from '../shared/json.js';

/** Mutable token tally, in tokens. */
interface Tally {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

/**
 * Creates a parser for one run of `claude -p --output-format stream-json --verbose`.
 *
 * Events: `init` from the `system`/`init` line; `turn` each time a new assistant `message.id` appears (turn number =
 * main-loop messages so far, tokens = all assistant messages so far, each id counted once); `tool` per `tool_use` block;
 * `text` per non-empty `text` block (whitespace collapsed, truncated to {@link TEXT_EVENT_MAX_CHARS}); `result` from the
 * `result` line.
 *
 * Outcome: from the last `result` line when there was one (`fromResult: true`: tokens = sum of `modelUsage` over all
 * models, else `usage`; cost = `total_cost_usd`, else the sum of `modelUsage[*].costUSD`; turns = `num_turns`).
 * Without one (stream cut by a timeout or kill): tokens summed from assistant messages, each `message.id` once; turns =
 * distinct main-loop assistant message ids; cost undefined; `fromResult: false`. Note the assistant lines' `usage`
 * is written when the message starts, so `output` is an underestimate in that case.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length.
 */
export function createClaudeStreamParser(): AgentStreamParser {
  let version: string | undefined;
  let model: string | undefined;
  let sessionId: string | undefined;
  const seenMessageIds = new Set<string>();
  let mainLoopMessages = 0;
  const seen: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  let result: AgentOutcome | undefined;

  function onInit(obj: JsonObject): AgentEvent[] {
    sessionId = str(obj.session_id) ?? sessionId;
    model = str(obj.model) ?? model;
    version = str(obj.claude_code_version) ?? version;
    return [{ kind: 'init', sessionId, model, version }];
  }

  function onAssistant(obj: JsonObject): AgentEvent[] {
    const message = asObject(obj.message);
    if (!message) return [];
    sessionId ??= str(obj.session_id);
    model ??= str(message.model);
    const events: AgentEvent[] = [];

    const id = str(message.id);
    if (id !== undefined && !seenMessageIds.has(id)) {
      seenMessageIds.add(id);
      addUsage(seen, asObject(message.usage));
      const isMainLoop = obj.parent_tool_use_id === null || obj.parent_tool_use_id === undefined;
      if (isMainLoop) {
        mainLoopMessages += 1;
        events.push({ kind: 'turn', turn: mainLoopMessages, tokens: toUsage(seen) });
      }
    }

    const content = Array.isArray(message.content) ? message.content : [];
    for (const raw of content) {
      const block = asObject(raw);
      if (!block) continue;
      if (block.type === 'tool_use') {
        const name = str(block.name) ?? 'tool';
        events.push({ kind: 'tool', name, summary: summarizeToolUse(name, block.input) });
      } else if (block.type === 'text') {
        const text = oneLine(str(block.text) ?? '', TEXT_EVENT_MAX_CHARS);
        if (text !== '') events.push({ kind: 'text', text });
      }
    }
    return events;
  }

  function onResult(obj: JsonObject): AgentEvent[] {
    sessionId = str(obj.session_id) ?? sessionId;
    const subtype = str(obj.subtype) ?? 'unknown';
    const isError = obj.is_error === true;

    const modelUsage = asObject(obj.modelUsage);
    const perModel = modelUsage ? Object.values(modelUsage).map(asObject).filter(isDefined) : [];
    let tokens: TokenUsage;
    if (perModel.length > 0) {
      const t: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
      for (const m of perModel) {
        t.input += num(m.inputTokens);
        t.output += num(m.outputTokens);
        t.cacheRead += num(m.cacheReadInputTokens);
        t.cacheWrite += num(m.cacheCreationInputTokens);
      }
      tokens = toUsage(t);
    } else if (asObject(obj.usage)) {
      const t: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
      addUsage(t, asObject(obj.usage));
      tokens = toUsage(t);
    } else {
      tokens = toUsage(seen);
    }

    let costUsd: number | undefined = finite(obj.total_cost_usd);
    if (costUsd === undefined) {
      const costs = perModel.map((m) => finite(m.costUSD)).filter(isDefined);
      if (costs.length > 0) costUsd = costs.reduce((a, b) => a + b, 0);
    }

    result = {
      turns: finite(obj.num_turns) ?? mainLoopMessages,
      resultText: str(obj.result),
      resultSubtype: subtype,
      isError,
      limitReached: subtype === 'error_max_turns' ? 'max_turns' : subtype === 'error_max_budget_usd' ? 'max_budget' : undefined,
      tokens,
      costUsd,
      fromResult: true,
    };
    return [{ kind: 'result', subtype, isError }];
  }

  return {
    push(line: string): AgentEvent[] {
      // Tool results can be megabytes and are not needed: skip them without parsing.
      if (line.startsWith('{"type":"user"')) return [];
      const obj = parseJsonLine(line, (bounded) => bounded.type === 'result');
      if (!obj) return [];
      try {
        if (obj.type === 'system' && obj.subtype === 'init') return onInit(obj);
        if (obj.type === 'assistant') return onAssistant(obj);
        if (obj.type === 'result') return onResult(obj);
      } catch {
        // Unexpected shapes must never stop the run; the line is ignored.
      }
      return [];
    },

    outcome(): AgentOutcome {
      const base = { version, model, sessionId };
      if (result) return { ...base, ...result, tokens: { ...result.tokens } };
      return {
        ...base,
        turns: mainLoopMessages,
        isError: false,
        tokens: toUsage(seen),
        fromResult: false,
      };
    },
  };
}

/**
 * A one-line summary of a Claude Code tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS}
 * characters: `Bash: <command>`, `Edit|MultiEdit|Write|Read: <path>`, `NotebookEdit: <path>`, `Grep|Glob: <pattern>`,
 * `WebFetch: <url>`, `WebSearch: <query>`, `Task: <description>`, else the tool name. Paths under
 * {@link CONTAINER_WORKSPACE} are shown relative to it. `input` is the `tool_use` block's `input` object.
 */
export function summarizeToolUse(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  let detail: string | undefined;
  switch (name) {
    case 'Bash':
      detail = str(args.command);
      break;
    case 'Edit':
    case 'MultiEdit':
    case 'Write':
    case 'Read':
      detail = mapDefined(str(args.file_path), relativeToWorkspace);
      break;
    case 'NotebookEdit':
      detail = mapDefined(str(args.notebook_path), relativeToWorkspace);
      break;
    case 'Grep':
    case 'Glob':
      detail = str(args.pattern);
      break;
    case 'WebFetch':
      detail = str(args.url);
      break;
    case 'WebSearch':
      detail = str(args.query);
      break;
    case 'Task':
      detail = str(args.description);
      break;
  }
  if (detail === undefined || detail.trim() === '') return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
  return oneLine(`${name}: ${detail}`, TOOL_SUMMARY_MAX_CHARS);
}

function addUsage(t: Tally, usage: JsonObject | undefined): void {
  if (!usage) return;
  t.input += num(usage.input_tokens);
  t.output += num(usage.output_tokens);
  t.cacheRead += num(usage.cache_read_input_tokens);
  t.cacheWrite += num(usage.cache_creation_input_tokens);
}

function toUsage(t: Tally): TokenUsage {
  return makeTokenUsage(t.input, t.output, t.cacheRead, t.cacheWrite);
}
