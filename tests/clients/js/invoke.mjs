// invoke.mjs - drives the gateway's Invoke API face with the AWS SDK for JavaScript v3, the way
// an application would: one LambdaClient, InvokeCommand per call. Used by
// tests/integration/test_invoke_api.py.
//
// Usage: node invoke.mjs ENDPOINT CALLS_JSON
//   CALLS_JSON is an array of {"id": "...", "input": {InvokeCommand input, Payload as a string}}.
// Credentials and region come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION), as for any SDK program. Retries are off so a failure is reported at once.
// Prints one JSON object: {id: result}, where a result is either
//   {"ok": true, "StatusCode", "FunctionError", "ExecutedVersion", "LogResult", "Payload"}
// or {"ok": false, "name", "status", "message", "isResourceNotFound", "Type"}.
import { InvokeCommand, LambdaClient, ResourceNotFoundException } from "@aws-sdk/client-lambda";

const [endpoint, callsJson] = process.argv.slice(2);
if (!endpoint || !callsJson) {
  console.error("usage: node invoke.mjs ENDPOINT CALLS_JSON");
  process.exit(2);
}

const client = new LambdaClient({ endpoint, maxAttempts: 1 });
const results = {};

for (const { id, input } of JSON.parse(callsJson)) {
  const params = { ...input };
  if (typeof params.Payload === "string") params.Payload = new TextEncoder().encode(params.Payload);
  try {
    const out = await client.send(new InvokeCommand(params));
    results[id] = {
      ok: true,
      StatusCode: out.StatusCode,
      FunctionError: out.FunctionError ?? null,
      ExecutedVersion: out.ExecutedVersion ?? null,
      LogResult: out.LogResult ?? null,
      Payload: out.Payload ? new TextDecoder().decode(out.Payload) : null,
    };
  } catch (err) {
    results[id] = {
      ok: false,
      name: err.name,
      status: err.$metadata?.httpStatusCode ?? null,
      message: err.message,
      isResourceNotFound: err instanceof ResourceNotFoundException,
      Type: err.Type ?? null,
    };
  }
}
client.destroy();
process.stdout.write(JSON.stringify(results) + "\n");
