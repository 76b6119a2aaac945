// Run by bench/dashboard.sh against a running server: signs in, then
// (1) the first load of /app/ on an empty cache: every response's
// compressed body size, the static files and the API apart; (2) each
// page's time to ready (document.body.dataset.ready names it), from a
// hash change inside the running app and from a full reload, median of 5.
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/e2e/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const { CHATTER_URL, EMAIL, PASSWORD } = process.env;
const APP = `${CHATTER_URL}/app/`;
const PAGES = ["overview", "faqs", "unanswered", "conversations", "widget", "members", "account"];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(APP);
  await page.waitForFunction(() => document.body.dataset.ready === "signin");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForFunction(() => document.body.dataset.ready === "overview", null, { timeout: 30_000 });

  // (1) A new tab with an empty cache but the session: the first load.
  const fresh = await browser.newContext({ storageState: await context.storageState(), viewport: { width: 1280, height: 860 } });
  const first = await fresh.newPage();
  const responses = [];
  first.on("requestfinished", async (r) => {
    const sizes = await r.sizes();
    responses.push({ url: r.url(), bytes: sizes.responseBodySize + sizes.responseHeadersSize, body: sizes.responseBodySize });
  });
  const t0 = Date.now();
  await first.goto(`${APP}#/overview`);
  await first.waitForFunction(() => document.body.dataset.ready === "overview", null, { timeout: 30_000 });
  const firstReady = Date.now() - t0;
  await first.waitForLoadState("networkidle");
  const isStatic = (u) => new URL(u).pathname.startsWith("/app/");
  const sum = (xs) => xs.reduce((a, r) => a + r.body, 0);
  const statics = responses.filter((r) => isStatic(r.url));
  const apis = responses.filter((r) => !isStatic(r.url));
  console.log(`first load of /app/#/overview: ${statics.length} files, ${(sum(statics) / 1024).toFixed(1)} KB compressed bodies` +
    ` (+ ${apis.length} API answers ${(sum(apis) / 1024).toFixed(1)} KB) = ${((sum(statics) + sum(apis)) / 1024).toFixed(1)} KB; ready in ${firstReady} ms`);
  for (const r of statics.sort((a, b) => b.body - a.body)) console.log(`  ${(r.body / 1024).toFixed(1).padStart(6)} KB  ${new URL(r.url).pathname}`);
  await fresh.close();

  // (1b) The Unanswered page's first view after the upgrade to kept
  // vectors (tenant V6): the seeded messages have none, so this view
  // embeds the 500 latest fallback questions and keeps their vectors (what
  // every view cost before); the views below read them back.
  {
    await page.goto(`${APP}#/account`);
    await page.waitForFunction(() => document.body.dataset.ready === "account");
    const cold = await page.evaluate(async () => {
      const t = performance.now();
      location.hash = "#/unanswered";
      while (document.body.dataset.ready !== "unanswered") await new Promise((r) => setTimeout(r, 5));
      return performance.now() - t;
    });
    console.log(`unanswered, first view after the upgrade (embeds and keeps 500 vectors): ${cold.toFixed(0)} ms`);
  }

  // (2) Time to ready per page.
  console.log("page            in-app (ms)  reload (ms)   median of 5");
  for (const name of PAGES) {
    const inApp = [], reload = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(`${APP}#/account`);
      await page.waitForFunction(() => document.body.dataset.ready === "account");
      const a = await page.evaluate(async (n) => {
        const t = performance.now();
        location.hash = `#/${n}`;
        while (document.body.dataset.ready !== n) await new Promise((r) => setTimeout(r, 5));
        return performance.now() - t;
      }, name);
      inApp.push(a);
      const t = Date.now();
      await page.goto("about:blank");
      await page.goto(`${APP}#/${name}`);
      await page.waitForFunction((n) => document.body.dataset.ready === n, name, { timeout: 30_000 });
      reload.push(Date.now() - t);
    }
    console.log(`${name.padEnd(16)}${median(inApp).toFixed(0).padStart(11)}${median(reload).toFixed(0).padStart(13)}`);
  }
} finally {
  await browser.close();
}
