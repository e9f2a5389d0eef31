// An MCP client built on the official SDK, standing in for Claude Code: it starts the server given on the
// command line over stdio, initializes, lists tools, pings, and reports on stdout, one JSON object per line,
// everything that happens, above all each notifications/claude/channel, validated with the schema Claude Code
// applies (meta a record of strings). A line "close" on stdin, or its end, closes the client.
//
//   CM_MCP_SDK=tests/mcp/node_modules node tests/mcp/channel-client.cjs target/debug/cm-mcp [ARGS...]
//
// With CM_MCP_TRACE set, every message in either direction is also written to stderr.
'use strict';

const path = require('node:path');
const readline = require('node:readline');
const { createRequire } = require('node:module');

const sdkDir = process.env.CM_MCP_SDK;
if (!sdkDir) {
  console.error('CM_MCP_SDK must name the node_modules directory that holds @modelcontextprotocol/sdk');
  process.exit(2);
}
const sdk = createRequire(path.join(path.resolve(sdkDir), 'resolve.cjs'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdk('@modelcontextprotocol/sdk/client/stdio.js');
const { z } = sdk('zod');

const report = (event, fields) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
const trace = (dir, msg) => {
  if (process.env.CM_MCP_TRACE) process.stderr.write(`${dir} ${JSON.stringify(msg)}\n`);
};

// The shape Claude Code accepts: a non-string meta value makes it drop the whole notification.
const ChannelNotification = z.object({
  method: z.literal('notifications/claude/channel'),
  params: z.object({
    content: z.string(),
    meta: z.record(z.string(), z.string()).optional(),
  }),
});

// Wraps the SDK's stdio transport to trace the wire.
function traced(inner) {
  return {
    start: () => inner.start(),
    close: () => inner.close(),
    send: (msg, opts) => {
      trace('->', msg);
      return inner.send(msg, opts);
    },
    setProtocolVersion: (v) => inner.setProtocolVersion?.(v),
    get sessionId() { return inner.sessionId; },
    get onmessage() { return inner.onmessage; },
    set onmessage(f) {
      inner.onmessage = (msg, extra) => {
        trace('<-', msg);
        f(msg, extra);
      };
    },
    get onclose() { return inner.onclose; },
    set onclose(f) { inner.onclose = f; },
    get onerror() { return inner.onerror; },
    set onerror(f) { inner.onerror = f; },
  };
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  if (!command) {
    console.error('usage: channel-client.cjs SERVER [ARGS...]');
    process.exit(2);
  }
  const inner = new StdioClientTransport({ command, args, env: { ...process.env }, stderr: 'inherit' });
  const client = new Client({ name: 'claudemesh-test-client', version: '1.0.0' }, { capabilities: {} });
  client.onerror = (e) => report('error', { message: String(e && e.message ? e.message : e) });
  client.setNotificationHandler(ChannelNotification, (n) => report('channel', { params: n.params }));
  client.fallbackNotificationHandler = async (n) => report('notification', { method: n.method, params: n.params });

  await client.connect(traced(inner));
  inner._process?.on('exit', (code, signal) => report('exit', { code, signal }));
  report('initialized', {
    server: client.getServerVersion(),
    capabilities: client.getServerCapabilities(),
    instructions: client.getInstructions(),
  });
  const tools = await client.listTools();
  report('tools', { tools: tools.tools });
  await client.ping();
  report('pong', {});

  const rl = readline.createInterface({ input: process.stdin });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await client.close();
    // Let the exit event of the server arrive.
    await new Promise((r) => setTimeout(r, 200));
    report('closed', {});
    process.exit(0);
  };
  rl.on('line', (line) => {
    if (line.trim() === 'close') close();
  });
  rl.on('close', close);
}

main().catch((e) => {
  report('error', { message: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
