// Reads a JSON array of Mermaid diagram sources on stdin and prints a JSON array with one
// {"ok": bool, "type": string|null, "error": string|null} per diagram, in order.
// mermaid.parse() runs the diagram type's real grammar; it needs `window`/`document` only for
// DOMPurify, which jsdom provides.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const source of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(source);
    results.push({ ok: true, type: parsed.diagramType, error: null });
  } catch (err) {
    results.push({ ok: false, type: null, error: String(err?.message ?? err) });
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
