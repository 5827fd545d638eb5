// Bundles the workbench into ../api/static (served by api/ui.py); no CDN at run time.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const out = new URL("../api/static/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  minify: true,
  target: ["es2020"],
  format: "iife",
  outfile: `${out}app.js`,
  legalComments: "linked",
  logLevel: "info",
});
copyFileSync("src/index.html", `${out}index.html`);
copyFileSync("src/style.css", `${out}style.css`);
