// The visitor widget in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), run by tests/widget_e2e.rs, which starts the
// real server and two client pages and passes:
//   CHATTER_URL      the server, e.g. http://127.0.0.1:8000
//   ALLOWED_PAGE     a client page on an origin the tenant allows
//   DENIED_PAGE      the same page on an origin it does not
//   EXPECTED_ANSWER  the FAQ answer to "When are you open?"
//   SHIPPING_ANSWER, RETURNS_ANSWER  the answers to "Do you ship abroad?"
//                    and "How do I return an item?"
//   CAREFUL_PAGE     a page of a second tenant whose bot always asks "did
//                    you mean" (caution 1) before answering, and whose
//                    owner hid "Powered by Chatter"
//   SCREENSHOT       optional: where to save a picture of the open widget
// Exits 0 when everything a visitor should see was seen.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const { CHATTER_URL, ALLOWED_PAGE, DENIED_PAGE, CAREFUL_PAGE, EXPECTED_ANSWER, SHIPPING_ANSWER, RETURNS_ANSWER, SCREENSHOT } =
  process.env;
const required = { CHATTER_URL, ALLOWED_PAGE, DENIED_PAGE, CAREFUL_PAGE, EXPECTED_ANSWER, SHIPPING_ANSWER, RETURNS_ANSWER };
for (const [name, value] of Object.entries(required)) {
  if (!value) throw new Error(`${name} is not set (run through tests/widget_e2e.rs)`);
}
const TIMEOUT = 60_000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  // Root in CI: Chromium's sandbox needs a user namespace we may not have.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  // A 360-px-wide phone.
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, deviceScaleFactor: 2 });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const fromChatter = [];
  page.on("request", (r) => { if (r.url().startsWith(CHATTER_URL)) fromChatter.push(r.url()); });

  await page.goto(ALLOWED_PAGE);
  const open = page.getByRole("button", { name: "Open chat" });
  await open.waitFor();
  await page.waitForLoadState("networkidle");
  assert.deepEqual(fromChatter, [`${CHATTER_URL}/static/widget.js`], "nothing but the script loads before opening");

  await open.click();
  const message = page.getByRole("textbox", { name: "Message" });
  await message.waitFor();
  const log = page.getByRole("log");
  await log.getByText("Ask me about opening hours").waitFor();
  await message.fill("When are you open?");
  await page.getByRole("button", { name: "Send" }).click();
  await log.getByText(EXPECTED_ANSWER).waitFor();
  await log.getByText("When are you open?").waitFor();
  // The mark shows unless the owner hid it on a plan that allows it.
  assert.ok(await page.getByText("Powered by Chatter").isVisible(), "the Powered by Chatter mark shows");

  // The panel fits the phone: nothing sticks out sideways.
  const panel = await page.getByRole("dialog", { name: "Chat" }).boundingBox();
  assert.ok(panel.x >= 0 && panel.x + panel.width <= 360, `panel at ${panel.x}..${panel.x + panel.width}`);
  // The page's hostile styles stay out of the Shadow DOM.
  const size = await message.evaluate((el) => getComputedStyle(el).fontSize);
  assert.equal(size, "15px");

  const helpful = log.getByRole("button", { name: "Helpful", exact: true });
  await helpful.click();
  await page.getByRole("status").getByText("Thanks for your feedback").waitFor();
  assert.equal(await helpful.getAttribute("aria-pressed"), "true");
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT });

  // A reload continues the conversation: the widget reopens with it.
  await page.reload();
  await page.getByRole("log").getByText(EXPECTED_ANSWER).waitFor();
  await page.getByRole("log").getByText("When are you open?").waitFor();
  assert.equal(await page.getByRole("button", { name: "Helpful", exact: true }).getAttribute("aria-pressed"), "true");
  // Closed and opened again by keyboard: Escape, then the launcher.
  await page.getByRole("textbox", { name: "Message" }).press("Escape");
  await page.getByRole("button", { name: "Open chat" }).press("Enter");
  const again = page.getByRole("log");
  await again.getByText(EXPECTED_ANSWER).waitFor();
  const box = page.getByRole("textbox", { name: "Message" });
  const status = page.getByRole("status");

  // 429: the widget says so and sends again after Retry-After.
  let limited = false;
  await page.route(`${CHATTER_URL}/api/chat`, (route) => {
    if (limited || route.request().method() !== "POST") return route.continue();
    limited = true;
    return route.fulfill({
      status: 429,
      headers: {
        "Retry-After": "1",
        "Access-Control-Allow-Origin": new URL(ALLOWED_PAGE).origin,
        "Access-Control-Expose-Headers": "Retry-After",
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ error: { code: "rate_limited", message: "too many attempts" } }),
    });
  });
  await box.fill("Do you ship abroad?");
  await box.press("Enter");
  await status.getByText("sending messages too quickly").waitFor();
  await again.getByText(SHIPPING_ANSWER).waitFor();
  assert.ok(limited);
  await page.unrouteAll();

  // Offline: the widget says so and sends when the connection is back.
  await context.setOffline(true);
  await box.fill("How do I return an item?");
  await box.press("Enter");
  await status.getByText("You're offline").waitFor();
  await context.setOffline(false);
  await again.getByText(RETURNS_ANSWER).waitFor();

  // A site the tenant does not allow: no answer, and a clear message.
  const other = await context.newPage();
  await other.goto(DENIED_PAGE);
  await other.getByRole("button", { name: "Open chat" }).click();
  await other.getByRole("status").getByText("not enabled for this website").waitFor();
  const input = other.getByRole("textbox", { name: "Message" });
  assert.ok(await input.isDisabled(), "the message box is disabled");
  assert.equal(await other.getByRole("log").getByText(EXPECTED_ANSWER).count(), 0);

  // The thumbs are drawn (SVG), not emoji a machine may lack a font for.
  assert.ok(await page.getByRole("button", { name: "Not helpful", exact: true }).first().locator("svg").count() > 0);

  // A visitor who types before the config arrives still sees the greeting first.
  const fresh = await browser.newContext({ viewport: { width: 360, height: 740 } });
  fresh.setDefaultTimeout(TIMEOUT);
  const slow = await fresh.newPage();
  await slow.route(`${CHATTER_URL}/api/widget/config`, async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
  });
  await slow.goto(ALLOWED_PAGE);
  await slow.getByRole("button", { name: "Open chat" }).click();
  await slow.getByRole("textbox", { name: "Message" }).fill("When are you open?");
  await slow.getByRole("button", { name: "Send" }).click();
  const slowLog = slow.getByRole("log");
  await slowLog.getByText(EXPECTED_ANSWER).waitFor();
  const order = await slowLog.locator(".msg:not([hidden]):not(.typing)").allTextContents();
  assert.match(order[0], /Ask me about opening hours/, `greeting first: ${JSON.stringify(order)}`);
  assert.match(order[1], /When are you open\?/);
  await fresh.close();

  // A bot that is not sure asks "did you mean": a named group of buttons.
  // Clicking one answers with that FAQ, and shows the chosen question.
  const careful = await context.newPage();
  await careful.goto(CAREFUL_PAGE);
  await careful.getByRole("button", { name: "Open chat" }).click();
  const carefulBox = careful.getByRole("textbox", { name: "Message" });
  await carefulBox.fill("Are you open on Saturday mornings?");
  await carefulBox.press("Enter");
  const choices = careful.getByRole("group", { name: "Did you mean" });
  const choice = choices.getByRole("button", { name: "What are your opening hours?" });
  await choice.waitFor();
  assert.ok((await choices.getByRole("button").count()) >= 2, "at least two choices");
  assert.equal(await careful.getByRole("log").getByText(EXPECTED_ANSWER).count(), 0, "no answer before the pick");
  await choice.click();
  await careful.getByRole("log").getByText(EXPECTED_ANSWER).waitFor();
  await careful.getByRole("log").getByText("What are your opening hours?").waitFor();
  // This bot's owner hid the mark (a self-hosted server allows it).
  assert.equal(await careful.getByText("Powered by Chatter").isVisible(), false, "the mark is hidden");
  await choices.getByRole("button").first().waitFor({ state: "detached" });

  console.log("widget e2e: every check passed");
} finally {
  await browser.close();
}
