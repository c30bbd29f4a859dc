// Files imported `with { type: "file" }` resolve to a path (embedded in the compiled binary).
// Tested by tests/http/routes/docs.test.ts (the offline OpenAPI page's assets).
declare module "swagger-ui-dist/*" {
  const path: string;
  export default path;
}

// Files imported `with { type: "text" }` resolve to their content (the status page's inline script).
declare module "*.client.js" {
  const text: string;
  export default text;
}
