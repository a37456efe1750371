// A caller in another language, with a client generated from the gateway's own document:
// openapi-typescript turns GET /openapi.json into generated/schema.d.ts, openapi-fetch makes the
// typed client, and tsc (strict) checks this file against it before node runs it.
//
//   node generated/js/client.js http://127.0.0.1:PORT
//
// Calls /invoke and /invoke-async in both forms, and reads a typed error. Prints one JSON line;
// exits 1 (assert) when an answer is not the expected one.
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type GatewayError = components["schemas"]["GatewayError"];
type Accepted = components["schemas"]["AsyncAccepted"];

const baseUrl = process.argv[2];
if (!baseUrl) throw new Error("usage: client.js BASE_URL");
const client = createClient<paths>({ baseUrl });
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// POST /invoke/{name}: the body is the event, the answer the function's result.
const byName = await client.POST("/invoke/{name}", {
  params: { path: { name: "echo" } },
  body: { orderId: 7, from: "typed client" },
});
assert.equal(byName.response.status, 200);
assert.deepEqual(byName.data, { orderId: 7, from: "typed client" });
assert.match(byName.response.headers.get("x-request-id") ?? "", uuid);

// POST /invoke: the envelope.
const envelope = await client.POST("/invoke", {
  body: { function: "echo", event: { n: 1 } },
});
assert.equal(envelope.response.status, 200);
assert.deepEqual(envelope.data, { n: 1 });

// An error is typed too: the 404 of an unknown function.
const missing = await client.POST("/invoke/{name}", {
  params: { path: { name: "no-such-function" } },
  body: {},
});
assert.equal(missing.response.status, 404);
assert.equal(missing.data, undefined);
const err: GatewayError | undefined = missing.error;
assert.equal(err?.error.type, "LambdaClientError");
assert.equal(err?.error.awsErrorType, "ResourceNotFoundException");
assert.equal(err?.error.function, "no-such-function");

// POST /invoke-async/{name} and /invoke-async: 202 {"status":202,"requestId"}.
const asyncByName = await client.POST("/invoke-async/{name}", {
  params: { path: { name: "echo" } },
  body: { later: true },
});
assert.equal(asyncByName.response.status, 202);
const accepted: Accepted | undefined = asyncByName.data;
assert.equal(accepted?.status, 202);
assert.equal(accepted?.requestId, asyncByName.response.headers.get("x-request-id"));

const asyncEnvelope = await client.POST("/invoke-async", {
  body: { function: "echo", event: {} },
});
assert.equal(asyncEnvelope.response.status, 202);
assert.match(asyncEnvelope.data?.requestId ?? "", uuid);

// What the types refuse (checked by tsc, never run): an envelope without "function", a path the
// document does not have, a GET where only POST is documented.
function neverCalled(): void {
  // @ts-expect-error "function" is required in the envelope
  void client.POST("/invoke", { body: { event: {} } });
  // @ts-expect-error no such path
  void client.POST("/invoke-sync/{name}", { params: { path: { name: "echo" } } });
  // @ts-expect-error /invoke is POST only
  void client.GET("/invoke", {});
}
void neverCalled;

console.log(JSON.stringify({
  invoke: byName.data,
  envelope: envelope.data,
  notFound: err?.error.awsErrorType,
  invokeAsync: accepted,
  invokeAsyncEnvelope: asyncEnvelope.data,
}));
