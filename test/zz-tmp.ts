import { openApiDocument } from "../src/api/openapi.ts";
const d = openApiDocument() as any;
console.log(JSON.stringify(d.components.schemas.CompletionRequest.properties.prompt, null, 1).slice(0, 1500));
console.log(JSON.stringify(d.components.schemas.CompletionChunk, null, 1).slice(0, 2500));
console.log(Object.keys(d.components.schemas));
console.log(JSON.stringify(d.components.schemas.ChatRequest.properties.messages).slice(0, 1500));
