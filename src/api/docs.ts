/**
 * /docs: the Scalar API reference over /openapi.json, with Scalar's standalone bundle served by this server
 * from node_modules (no CDN, so the page works offline and leaks nothing to third parties).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export function scalarScriptPath(): string {
  const require = createRequire(import.meta.url);
  // the package exports no package.json; its main entry is dist/index.js, the bundle dist/browser/standalone.js
  return join(dirname(require.resolve('@scalar/api-reference')), 'browser', 'standalone.js');
}

export function docsHtml(specUrl: string, scriptUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Manyfold API reference</title>
</head>
<body>
<script id="api-reference" data-url="${specUrl}" data-configuration='${JSON.stringify({ hideClientButton: true, withDefaultFonts: false, telemetry: false })}'></script>
<script src="${scriptUrl}"></script>
</body>
</html>
`;
}
