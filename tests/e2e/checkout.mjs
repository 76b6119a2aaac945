// The Billing page pays through Razorpay Checkout, in headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core), run by
// tests/dashboard_e2e.rs, which starts the real server with billing on and
// a Razorpay stand-in on another loopback origin, and passes:
//   CHATTER_URL    the server, e.g. http://127.0.0.1:8000
//   OWNER          the owner's email; PASSWORD their password
//   SCRIPT_URL     the stand-in Checkout script (billing.checkout_script_url)
//   SHORT_URL      the stand-in subscription's hosted page (the fallback)
// The stand-in script is Razorpay's documented interface: `new
// Razorpay(options).open()` calls `options.handler` with
// razorpay_payment_id, razorpay_subscription_id and razorpay_signature,
// the signature made in the browser (WebCrypto) as Razorpay makes it.
// Exits 0 when everything was seen.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const { CHATTER_URL, OWNER, PASSWORD, SCRIPT_URL, SHORT_URL } = process.env;
for (const [name, value] of Object.entries({ CHATTER_URL, OWNER, PASSWORD, SCRIPT_URL, SHORT_URL })) {
  if (!value) throw new Error(`${name} is not set (run through tests/dashboard_e2e.rs)`);
}
const TIMEOUT = 60_000;
const APP = `${CHATTER_URL}/app/`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(e.message));
  const scripts = [];
  page.on("request", (r) => { if (r.url() === SCRIPT_URL) scripts.push(r.url()); });

  // The dashboard's policy allows the Checkout script's origin, and only it.
  const response = await page.goto(`${APP}#/billing`);
  const csp = response.headers()["content-security-policy"];
  const origin = new URL(SCRIPT_URL).origin;
  assert.match(csp, new RegExp(`script-src 'self' ${origin};`), csp);
  assert.match(csp, new RegExp(`frame-src 'self' ${origin};`), csp);
  await page.getByLabel("Email").fill(OWNER);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForFunction(() => document.body.dataset.ready === "overview");
  await page.goto(`${APP}#/billing`);
  await page.waitForFunction(() => document.body.dataset.ready === "billing");
  assert.equal(await page.locator("#billing-state").textContent(), "Free trial");
  assert.deepEqual(scripts, [], "Checkout's script loads only when the owner subscribes");

  // Checkout unreachable: Razorpay's hosted page is offered instead.
  await page.route(SCRIPT_URL, (route) => route.abort());
  await page.getByRole("button", { name: "Subscribe to starter" }).click();
  const fallback = page.locator("#billing-fallback");
  await fallback.getByRole("link", { name: "Pay on Razorpay's page" }).waitFor();
  assert.equal(await fallback.getByRole("link").getAttribute("href"), SHORT_URL);
  await page.unrouteAll();

  // Checkout opens with the new subscription; its handler's signature is
  // checked by the server and the plan is on at once.
  await page.getByRole("button", { name: "Subscribe to starter" }).click();
  await page.locator("#billing-state").getByText("Active").waitFor();
  const opened = await page.evaluate(() => window.__checkoutOpened);
  assert.match(opened.subscription_id, /^sub_/, JSON.stringify(opened));
  assert.match(opened.key, /^rzp_test_/, JSON.stringify(opened));
  assert.equal(await page.locator("#billing-plan").textContent(), "starter");
  assert.ok(scripts.length >= 1, "the script was loaded from its setting");

  assert.deepEqual(problems, [], "no CSP refusal or page error");
  console.log("checkout e2e: every check passed");
} finally {
  await browser.close();
}
