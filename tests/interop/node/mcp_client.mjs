// The official MCP TypeScript SDK's client running a script of steps against an MCP server,
// for tests/interop.
//
//   node mcp_client.mjs < SCRIPT.json
//
// SCRIPT: {"server": {"command": C, "args": [...], "env": {...}} or {"url": U, "headers": {...}},
//          "roots": ["file:///dir", ...] (optional: offered to the server as MCP roots),
//          "steps": [{"op": "list_tools"}
//                    | {"op": "call", "name": N, "arguments": {...}, "progress": true,
//                       "cancel_at": FRACTION (optional: abort once progress/total >= it)}
//                    | {"op": "poll", "name": N, "arguments": {...}, "path": "a.0.b",
//                       "equals": VALUE, "timeout_ms": MS}]}
// ("poll" calls the tool until structuredContent at `path` equals VALUE, within MS.)
// Prints one JSON object on stdout: {"steps": [RESULT, ...]}, where a call's RESULT is
// {"result": CallToolResult | null, "cancelled": bool, "error": str | null,
//  "progress": [{"t": ms since the call, "progress", "total", "message"}, ...]}.
// Exits 1 on an unexpected failure (printed on stderr), 2 on a usage error.
import fs from 'node:fs'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js'

let script
try {
  script = JSON.parse(fs.readFileSync(0, 'utf8'))
} catch (err) {
  process.stderr.write(`usage: node mcp_client.mjs < SCRIPT.json (${err.message})\n`)
  process.exit(2)
}

const capabilities = script.roots ? { roots: { listChanged: false } } : {}
const client = new Client({ name: 'upwell-interop', version: '1.0.0' }, { capabilities })
if (script.roots) {
  client.setRequestHandler(ListRootsRequestSchema, async () => ({
    roots: script.roots.map((uri) => ({ uri })),
  }))
}

const transport = script.server.url
  ? new StreamableHTTPClientTransport(new URL(script.server.url), {
      requestInit: { headers: script.server.headers || {} },
    })
  : new StdioClientTransport({
      command: script.server.command,
      args: script.server.args || [],
      env: script.server.env || {},
      stderr: 'inherit',
    })

async function call(step) {
  const progress = []
  const controller = new AbortController()
  const started = performance.now()
  const options = { signal: controller.signal, timeout: 600_000, resetTimeoutOnProgress: true }
  if (step.progress) {
    options.onprogress = (p) => {
      progress.push({
        t: performance.now() - started,
        progress: p.progress,
        total: p.total,
        message: p.message,
      })
      if (step.cancel_at !== undefined && p.total && p.progress / p.total >= step.cancel_at) {
        controller.abort('cancelled by the test client')
      }
    }
  }
  try {
    const result = await client.callTool(
      { name: step.name, arguments: step.arguments || {} },
      undefined,
      options,
    )
    return { result, cancelled: false, error: null, progress }
  } catch (err) {
    if (controller.signal.aborted) {
      return { result: null, cancelled: true, error: String(err), progress }
    }
    return { result: null, cancelled: false, error: String(err), progress }
  }
}

function at(value, path) {
  for (const key of path.split('.')) value = value == null ? undefined : value[key]
  return value
}

async function poll(step) {
  const deadline = performance.now() + (step.timeout_ms || 10_000)
  for (;;) {
    const result = await client.callTool({ name: step.name, arguments: step.arguments || {} })
    const value = at(result.structuredContent, step.path)
    if (JSON.stringify(value) === JSON.stringify(step.equals)) return { result, value }
    if (performance.now() > deadline) return { result, value, timed_out: true }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

try {
  await client.connect(transport)
  const out = []
  for (const step of script.steps) {
    if (step.op === 'list_tools') {
      out.push(await client.listTools())
    } else if (step.op === 'call') {
      out.push(await call(step))
    } else if (step.op === 'poll') {
      out.push(await poll(step))
    } else {
      throw new Error(`unknown op ${step.op}`)
    }
  }
  process.stdout.write(JSON.stringify({ steps: out }) + '\n')
  await client.close()
} catch (err) {
  process.stderr.write(`mcp_client.mjs: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
}
