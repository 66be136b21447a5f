// Lint for what the type checker cannot see: promises nobody awaits or
// catches (no unhandled rejection from a background loop). Layout
// is Prettier's job (npm run format:check), so no style rules here.
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "**/*.js", "**/*.mjs"] },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: "./tsconfig.check.json", tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test's test()/describe() return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "it", "describe", "suite", "before", "after", "beforeEach", "afterEach"] }] },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      // The code already marks its deliberate control-character patterns for this rule.
      "no-control-regex": "error",
      // A failing assert.ok(expr) without a message makes Node 20's assert re-read the call's source
      // to word one; under tsx that hung a test file until the runner's timeout (a 40 s+ hang, then
      // a timeout instead of the assertion). With a message it fails at once.
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.object.name='assert'][callee.property.name='ok'][arguments.length=1]",
          message: "give assert.ok a message (its second argument): without one a failure can hang the test runner under tsx",
        },
      ],
    },
  },
);
