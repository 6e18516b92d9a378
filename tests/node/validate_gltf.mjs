// Validates a .glb/.gltf file with the Khronos glTF Validator and prints the report as JSON on stdout.
// Usage: node tests/node/validate_gltf.mjs FILE
// Install once: npm install --prefix tests/node   (the version is pinned in tests/node/package.json)
import { readFile } from "node:fs/promises";
import path from "node:path";
import validator from "gltf-validator";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate_gltf.mjs FILE");
  process.exit(2);
}
const data = await readFile(file);
const report = await validator.validateBytes(new Uint8Array(data), {
  uri: path.basename(file),
  maxIssues: 100,
  externalResourceFunction: (uri) =>
    readFile(path.join(path.dirname(file), decodeURIComponent(uri))).then((b) => new Uint8Array(b)),
});
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
