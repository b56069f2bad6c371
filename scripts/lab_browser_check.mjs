// The live lab in a real browser: serve a copy of the book, open chapter 1
// in headless Chromium, press "Run this chapter on my machine", and wait for
// the page to show this machine's table. Outside `cargo test` (CI has no
// browser); run it with scripts/lab_browser_check.sh [quick|full].
//
// Prints the time from the press to the changed table, and writes a
// screenshot of the page before and after to target/browser-check/.

import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const mode = process.argv[2] || "quick";
if (!["quick", "full"].includes(mode)) {
  console.error(`error: mode ${mode}: quick or full`);
  process.exit(2);
}
const project = resolve(process.env.PROJECT || new URL("../..", import.meta.url).pathname);
const out = join(project, "target", "browser-check");
mkdirSync(out, { recursive: true });
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";

// A copy of the book, so a full run rewrites the copy's records, not ours.
const root = mkdtempSync(join(tmpdir(), "evt-browser-"));
cpSync(join(project, "book"), join(root, "book"), { recursive: true });
cpSync(join(project, "book.toml"), join(root, "book.toml"));
for (const code of ["examples", "src"]) symlinkSync(join(project, code), join(root, code));

const serve = spawn(join(project, "target", "release", "event-loops-vs-threads"),
  ["serve", "--port", "0", "--root", root], { stdio: ["ignore", "pipe", "inherit"] });
const lines = createInterface({ input: serve.stdout });
const host = await new Promise((ok, fail) => {
  lines.on("line", (line) => {
    const found = line.match(/^serving the book on (http:\/\/[^/]+)\//);
    if (found) ok(found[1]);
  });
  serve.on("exit", (code) => fail(new Error(`serve exited (${code})`)));
});

const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox"] });
let failed = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1400 });
  await page.goto(`${host}/chapter1_blocking.html`, { waitUntil: "load" });
  const button = `#evt-lab button[data-mode="${mode}"]`;
  await page.waitForSelector(button, { timeout: 10000 });
  const firstTable = () => page.$eval("main table", (t) => t.innerText);
  const before = await firstTable();
  await page.screenshot({ path: join(out, "chapter1-before.png") });
  const pressed = Date.now();
  await page.click(button);
  // The page reloads itself when the run's tables are built; wait for the
  // first table to differ from what it was.
  // A fresh clone builds the examples first, which takes minutes.
  const limit = (mode === "quick" ? 10 : 25) * 60e3;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    let now = null;
    try {
      now = await firstTable();
    } catch (e) {
      // Mid-reload: no table yet.
    }
    if (now !== null && now !== before) break;
    if (Date.now() - pressed > limit) throw new Error("the table did not change in time");
  }
  const took = (Date.now() - pressed) / 1000;
  await page.waitForSelector("#evt-lab .evt-lab-compare table", { timeout: 10000 });
  await page.screenshot({ path: join(out, "chapter1-after.png"), fullPage: false });
  const status = await page.$eval("#evt-lab .evt-lab-status", (s) => s.innerText);
  console.log(`chapter 1, ${mode}: ${took.toFixed(1)} s from the press to this machine's table`);
  console.log(`the page says: ${status}`);
} catch (error) {
  console.error(`error: ${error.message}`);
  failed = true;
} finally {
  await browser.close();
  serve.kill();
  rmSync(root, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
