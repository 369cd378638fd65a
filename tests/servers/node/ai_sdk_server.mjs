// An AI SDK chat server as its docs teach it, on 127.0.0.1, for streamchat's tests.
//
//   POST /api/chat  the stock route: UIMessages in, streamText(...).toUIMessageStreamResponse() out
//   POST /api/text  the same, answered with toTextStreamResponse() (unframed text/plain)
//   POST /api/fail  the same with an unreachable backend (UNREACHABLE_URL): an error chunk
//
// The model is any OpenAI-compatible server (BACKEND_URL, e.g. http://127.0.0.1:PORT/v1),
// through @ai-sdk/openai-compatible. Prints "listening <port>" once it accepts connections.
import http from "node:http";
import { Readable } from "node:stream";

import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { convertToModelMessages, streamText } from "ai";

const backend = createOpenAICompatible({
  name: "backend",
  baseURL: process.env.BACKEND_URL,
  includeUsage: true,
});
const model = backend.chatModel(process.env.BACKEND_MODEL || "local");
const settings = { temperature: 0, seed: 42, maxRetries: 0 };
if (process.env.MAX_OUTPUT_TOKENS) settings.maxOutputTokens = Number(process.env.MAX_OUTPUT_TOKENS);

async function readJson(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

// A web Response (what the SDK returns, as in a Next.js route) written to Node's response.
async function send(response, out) {
  out.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body) {
    const body = Readable.fromWeb(response.body);
    out.on("close", () => body.destroy());
    for await (const chunk of body) out.write(chunk);
  }
  out.end();
}

async function answer(path, messages) {
  const modelMessages = await convertToModelMessages(messages);
  if (path === "/api/fail") {
    const gone = createOpenAICompatible({ name: "gone", baseURL: process.env.UNREACHABLE_URL });
    const result = streamText({
      ...settings,
      model: gone.chatModel("none"),
      messages: modelMessages,
      onError: () => {}, // the error goes to the client, not to this server's log
    });
    return result.toUIMessageStreamResponse({ onError: () => "the model backend is unreachable" });
  }
  const result = streamText({ ...settings, model, messages: modelMessages });
  if (path === "/api/text") return result.toTextStreamResponse();
  // Token counts travel in the finish chunk's metadata, as the AI SDK docs show.
  return result.toUIMessageStreamResponse({
    messageMetadata: ({ part }) => (part.type === "finish" ? { totalUsage: part.totalUsage } : undefined),
  });
}

const server = http.createServer(async (request, out) => {
  try {
    if (request.method !== "POST" || !["/api/chat", "/api/text", "/api/fail"].includes(request.url)) {
      out.writeHead(404, { "content-type": "application/json" });
      out.end(JSON.stringify({ error: "no such route" }));
      return;
    }
    const { messages } = await readJson(request);
    await send(await answer(request.url, messages), out);
  } catch (error) {
    if (!out.headersSent) out.writeHead(500, { "content-type": "text/plain" });
    out.end(String(error));
  }
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
