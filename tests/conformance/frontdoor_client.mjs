// The TypeScript SDK's client against the front door: list every tool, call the ones named on
// the command line (JSON: [{"name": ..., "arguments": {...}}]), print one JSON line of results.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, callsJson] = process.argv.slice(2);
const client = new Client({ name: "frontdoor-ts", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const { tools } = await client.listTools();
const calls = [];
for (const call of JSON.parse(callsJson)) {
  const result = await client.callTool({ name: call.name, arguments: call.arguments });
  calls.push({ name: call.name, isError: Boolean(result.isError), structured: result.structuredContent ?? null });
}
await client.close();
console.log(JSON.stringify({ tools: tools.map((tool) => tool.name), calls }));
