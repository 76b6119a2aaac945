// The client dashboard in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), run by tests/dashboard_e2e.rs, which starts
// the real server and a client's site on another origin, and passes:
//   CHATTER_URL    the server, e.g. http://127.0.0.1:8000
//   SITE_PAGE      the client's page carrying the widget
//   OWNER, AGENT   two members' emails; PASSWORD their password
//   HOURS_ANSWER   the answer of the seeded "What are your opening hours?"
//   MAIL_URL       answers the next mail the server sent: "recipient\nlink"
//   SCREENSHOTS    optional: a folder for a picture of every page
// axe-core (from node_modules) runs on every page: no serious or critical
// violation. The page's Content-Security-Policy stays on: axe is evaluated
// through the DevTools protocol, which CSP does not govern, and any CSP
// refusal in the console fails the test.
// Exits 0 when everything was seen.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const { CHATTER_URL, SITE_PAGE, OWNER, AGENT, PASSWORD, HOURS_ANSWER, MAIL_URL, SCREENSHOTS } = process.env;
for (const [name, value] of Object.entries({ CHATTER_URL, SITE_PAGE, OWNER, AGENT, PASSWORD, HOURS_ANSWER, MAIL_URL })) {
  if (!value) throw new Error(`${name} is not set (run through tests/dashboard_e2e.rs)`);
}
const TIMEOUT = 60_000;
const APP = `${CHATTER_URL}/app/`;
const axeSource = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const GIFT_Q = "Do you sell gift cards?";
const GIFT_A = "Yes: gift cards from 10 to 200 euros, in the shop and online.";
const KAYAK_Q = "Can I rent a kayak for the weekend?";
const KAYAK_A = "Kayaks are 40 euros a day; book at the counter.";
const HOSTILE_Q = "<img src=x onerror=\"window.__pwned=1\"> hostile question";
const HOSTILE_A = "<script>window.__pwned=2</script> hostile answer";

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

/** A context whose console is watched for CSP refusals and page errors. */
async function newContext(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  context.setDefaultTimeout(TIMEOUT);
  return context;
}
const problems = [];
function watch(page, label) {
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`${label}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${label}: ${e.message}`));
  return page;
}

async function ready(page, name) {
  await page.waitForFunction((n) => document.body.dataset.ready === n, name, { timeout: TIMEOUT });
}

async function go(page, name) {
  await page.goto(`${APP}#/${name}`);
  await ready(page, name);
}

/** axe-core on the page as it is: no serious or critical violation. */
async function axe(page, label) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`), [],
    `axe on ${label}`);
}

async function shot(page, name) {
  if (!SCREENSHOTS) return;
  // Without a passing toast over the page.
  await page.evaluate(() => document.getElementById("toast")?.classList.remove("show"));
  await page.screenshot({ path: `${SCREENSHOTS}/dashboard-${name}.png`, fullPage: true });
}

async function signIn(page, email) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
}

let page;
try {
  // A signed-out browser asking for a page is sent to sign in.
  const owner = await newContext();
  page = watch(await owner.newPage(), "owner");
  await page.goto(`${APP}#/faqs`);
  await ready(page, "signin");
  await page.getByRole("heading", { name: "Sign in to Chatter" }).waitFor();
  await axe(page, "sign in");
  await shot(page, "signin");
  await page.getByLabel("Email").fill(OWNER);
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").getByText("Wrong email or password").waitFor();
  await signIn(page, OWNER);
  await ready(page, "overview");
  const cookies = await owner.cookies();
  const sessionCookie = cookies.find((c) => c.name === "chatter_session");
  assert.ok(sessionCookie && sessionCookie.httpOnly && sessionCookie.sameSite === "Strict", JSON.stringify(cookies));
  assert.equal(await page.evaluate(() => document.cookie.includes("chatter_session")), false, "scripts cannot read the session");

  // FAQs: add one (and a hostile one, which must stay text), try it.
  await go(page, "faqs");
  await page.getByLabel("Question", { exact: true }).fill(GIFT_Q);
  await page.getByLabel("Answer", { exact: true }).fill(GIFT_A);
  await page.getByRole("button", { name: "Add FAQ" }).click();
  await page.getByRole("cell", { name: GIFT_Q, exact: true }).waitFor();
  await page.getByLabel("Question", { exact: true }).fill(HOSTILE_Q);
  await page.getByLabel("Answer", { exact: true }).fill(HOSTILE_A);
  await page.getByRole("button", { name: "Add FAQ" }).click();
  await page.getByText(HOSTILE_Q).waitFor();
  await page.getByText(HOSTILE_A).waitFor();
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "tenant text is never HTML");
  assert.equal(await page.locator("main img").count(), 0);
  await page.getByLabel("Question to try").fill("Can I buy a gift card?");
  await page.getByRole("button", { name: "Try", exact: true }).click();
  await page.locator(".try-out").getByText(GIFT_A).waitFor();
  await page.locator(".nearest").getByText(GIFT_Q).waitFor();
  // Each nearest FAQ names the phrasing that matched.
  await page.locator(".nearest li").first().locator(".matched").getByText(/^matched (its question|a phrasing|its answer): “/).waitFor();
  // Delete with undo: the hostile FAQ goes and comes back.
  await page.getByRole("button", { name: `Delete: ${HOSTILE_Q}` }).click();
  await page.getByRole("status").getByRole("button", { name: "Undo" }).click();
  await page.getByRole("status").getByText("Restored").waitFor();
  await page.getByText(HOSTILE_Q).waitFor();
  // Search narrows the table.
  await page.getByLabel("Search").fill("gift");
  await page.getByText("1 of 5 FAQs").waitFor();
  await page.getByLabel("Search").fill("");
  // An import with a bad row is named before anything is written.
  await page.getByLabel("CSV or JSON file").setInputFiles({
    name: "faqs.csv", mimeType: "text/csv",
    buffer: Buffer.from("question,answer\nDo you have a shop in Lyon?,Yes on rue de la République.\n,An answer without a question\n"),
  });
  await page.getByText("1 bad row: line 3").waitFor();
  assert.ok(await page.getByRole("button", { name: /^Import \d+ FAQs?$/ }).isDisabled());
  await axe(page, "FAQs");
  await shot(page, "faqs");

  // A visitor on the client's site asks through the widget: one answered, one not.
  const visitor = await newContext({ viewport: { width: 390, height: 800 } });
  const site = watch(await visitor.newPage(), "visitor");
  await site.goto(SITE_PAGE);
  await site.getByRole("button", { name: "Open chat" }).click();
  const box = site.getByRole("textbox", { name: "Message" });
  const log = site.getByRole("log");
  await box.fill("Can I buy a gift card?");
  await box.press("Enter");
  await log.getByText(GIFT_A).waitFor();
  await box.fill(KAYAK_Q);
  await box.press("Enter");
  await log.locator(".msg.bot").nth(2).waitFor();
  assert.equal(await log.getByText(KAYAK_A).count(), 0);
  // The visitor marks that fallback not helpful (a drawn thumb, named).
  await log.locator(".msg.bot").nth(2).getByRole("button", { name: "Not helpful", exact: true }).click();
  await site.getByText("Thanks for your feedback.").waitFor();

  // The owner finds the conversation and reads its transcript.
  await go(page, "conversations");
  await page.getByLabel("Search", { exact: true }).fill("gift");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.getByRole("link", { name: "Can I buy a gift card?" }).click();
  const transcript = page.getByRole("region", { name: "Transcript" });
  await transcript.getByText(`FAQ: ${GIFT_Q}`).waitFor();
  await transcript.getByText(KAYAK_Q).waitFor();
  // "This question belongs to FAQ X": the owner files the visitor's
  // question under a FAQ from the transcript (a named button opens a
  // labelled choice of FAQ) ...
  const asked = "Can I buy a gift card?";
  const fileButton = transcript.getByRole("button", { name: `File under a FAQ: ${asked}` });
  assert.equal(await fileButton.getAttribute("aria-expanded"), "false");
  await fileButton.click();
  await transcript.getByLabel(`FAQ for “${asked}”`).selectOption({ label: "Do you ship abroad?" });
  await transcript.getByRole("form", { name: `File “${asked}” under a FAQ` })
    .getByRole("button", { name: "File under FAQ" }).click();
  await page.getByRole("status").getByText("Filed under “Do you ship abroad?”").waitFor();
  await axe(page, "conversations, filing a question");
  // ... and sees it listed as that FAQ's phrasing, where it can go again.
  await go(page, "faqs");
  const phrasing = page.getByRole("list", { name: "Other phrasings of “Do you ship abroad?”" });
  await phrasing.getByText(asked, { exact: true }).waitFor();
  await phrasing.getByRole("button", { name: `Remove phrasing “${asked}” of “Do you ship abroad?”` }).click();
  await page.getByRole("status").getByText(`Removed “${asked}”.`).waitFor();
  assert.equal(await page.getByRole("list", { name: "Other phrasings of “Do you ship abroad?”" }).count(), 0);
  await go(page, "conversations");
  // The thumbs-down filter (server-side) finds it too, and only it.
  await page.getByLabel("Search", { exact: true }).fill("");
  await page.getByLabel("Not helpful", { exact: true }).selectOption("true");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.getByText("1 conversation", { exact: true }).waitFor();
  await page.getByRole("link", { name: "Can I buy a gift card?" }).waitFor();
  await axe(page, "conversations");
  await shot(page, "conversations");

  // The unanswered question is grouped; the owner makes it a FAQ.
  await go(page, "unanswered");
  const group = page.locator("section.group", { has: page.getByRole("heading", { name: KAYAK_Q }) });
  await group.waitFor();
  await axe(page, "unanswered");
  await shot(page, "unanswered");
  await group.getByLabel(`Answer to “${KAYAK_Q}”`).fill(KAYAK_A);
  await group.getByRole("button", { name: "Make it a FAQ" }).click();
  await page.getByText(`“${KAYAK_Q}” is now a FAQ`).waitFor();

  // The widget answers it now.
  await box.fill(KAYAK_Q);
  await box.press("Enter");
  await log.getByText(KAYAK_A).waitFor();

  // The other pages: look, accessibility, pictures.
  await go(page, "overview");
  await page.locator(".chart canvas").first().waitFor();
  // Busiest hours: a chart, and the busiest named in words (UTC).
  await page.getByRole("heading", { name: "Busiest hours" }).waitFor();
  await page.locator(".chart canvas").nth(1).waitFor();
  await page.getByText(/^Busiest: \d\d:00–\d\d:00 \(\d+ questions?\)/).waitFor();
  await axe(page, "overview");
  await shot(page, "overview");
  await go(page, "widget");
  await page.getByText(`data-client-id="acme_outdoor"`).waitFor();
  // The live preview is the real widget in a frame, redrawn with values
  // not yet saved.
  const frame = page.frameLocator("iframe.preview");
  await frame.getByRole("heading", { name: "Acme helper" }).waitFor();
  await frame.getByText("Ask me about opening hours").waitFor();
  await axe(page, "widget");
  await shot(page, "widget");
  await page.getByLabel("Bot name").fill("Acme <b>draft</b> name");
  await page.getByLabel("Greeting").fill("A greeting not saved yet");
  await frame.getByRole("heading", { name: "Acme <b>draft</b> name" }).waitFor();
  await frame.getByText("A greeting not saved yet").waitFor();
  assert.equal(await frame.locator("b").count(), 0, "the preview shows text, never HTML");
  await go(page, "members");
  await page.getByRole("cell", { name: AGENT, exact: true }).waitFor();
  await axe(page, "members");
  await shot(page, "members");
  // The only owner cannot demote themself: the server says why, the role stays.
  await page.getByLabel(`Role of ${OWNER}`).selectOption("agent");
  await page.getByRole("alert").getByText("keeps one owner").waitFor();
  assert.equal(await page.getByLabel(`Role of ${OWNER}`).inputValue(), "owner");
  await axe(page, "members (an error shown)");
  await go(page, "account");
  await axe(page, "account");
  await shot(page, "account");

  // Dark and phone-sized: still no serious problem.
  const dark = await newContext({ colorScheme: "dark", viewport: { width: 390, height: 844 }, storageState: await owner.storageState() });
  const phone = watch(await dark.newPage(), "phone");
  for (const name of ["overview", "faqs"]) {
    await go(phone, name);
    await axe(phone, `${name} (dark, phone)`);
    const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${name} fits a phone: ${wide}px`);
    await shot(phone, `${name}-dark-phone`);
  }
  await dark.close();

  // An agent sees the pages but cannot change anything: no controls, and
  // the API refuses even a request made by hand with a valid CSRF token.
  const agent = await newContext();
  const agentPage = watch(await agent.newPage(), "agent");
  await agentPage.goto(APP);
  await ready(agentPage, "signin");
  await signIn(agentPage, AGENT);
  await ready(agentPage, "overview");
  await go(agentPage, "faqs");
  await agentPage.getByRole("cell", { name: GIFT_Q, exact: true }).waitFor();
  await agentPage.getByText("only the bot's owners can change things").waitFor();
  assert.equal(await agentPage.getByRole("button", { name: "Add FAQ" }).count(), 0);
  assert.equal(await agentPage.getByRole("button", { name: /^Edit:/ }).count(), 0);
  assert.equal(await agentPage.getByRole("button", { name: /^Delete:/ }).count(), 0);
  await go(agentPage, "widget");
  assert.ok(await agentPage.getByLabel("Bot name").isDisabled());
  const status = await agentPage.evaluate(async () => {
    const csrf = document.cookie.match(/chatter_csrf=([^;]*)/)[1];
    const res = await fetch("/api/faqs", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Client-ID": "acme_outdoor", "X-CSRF-Token": csrf },
      body: JSON.stringify({ question: "An agent's question", answer: "no" }),
    });
    return res.status;
  });
  assert.equal(status, 403);
  await axe(agentPage, "FAQs (agent)");
  // No Members page for an agent, and its API refuses them.
  assert.equal(await agentPage.getByRole("link", { name: "Members" }).count(), 0);
  assert.equal(await agentPage.evaluate(async () =>
    (await fetch("/api/members", { headers: { "X-Client-ID": "acme_outdoor" } })).status), 403);

  // A business signs itself up (the server runs with signup.enabled): from
  // the sign-in page's link to its own dashboard, signed in as the owner;
  // then it follows the mailed links: confirm the address, reset the password.
  const newcomer = await newContext();
  const joiner = watch(await newcomer.newPage(), "newcomer");
  await joiner.goto(APP);
  await ready(joiner, "signin");
  await joiner.getByRole("link", { name: "Forgot password?" }).waitFor();
  await joiner.getByRole("link", { name: "Create an account" }).click();
  await ready(joiner, "signup");
  await axe(joiner, "sign up");
  await shot(joiner, "signup");
  await joiner.getByLabel("Business name").fill("Bolt Bikes");
  assert.equal(await joiner.getByLabel("Client id").inputValue(), "bolt_bikes");
  await joiner.getByLabel("Email").fill(OWNER);
  await joiner.getByLabel("Password").fill(PASSWORD);
  await joiner.getByRole("button", { name: "Create my account" }).click();
  await joiner.getByRole("alert").getByText("exists already").waitFor();
  assert.equal(await joiner.getByLabel("Email").getAttribute("aria-invalid"), "true");
  await axe(joiner, "sign up, with an error");
  await joiner.getByLabel("Email").fill("owner@bolt.test");
  await joiner.getByRole("button", { name: "Create my account" }).click();
  await ready(joiner, "overview");
  await joiner.getByText("owner@bolt.test (owner)").waitFor();
  assert.equal(await joiner.locator("#tenant").inputValue(), "bolt_bikes");

  /** The next mail's link, opened in this server's dashboard. */
  async function followMail(to) {
    const [rcpt, link] = (await (await fetch(MAIL_URL)).text()).split("\n");
    assert.equal(rcpt, to);
    const fragment = new URL(link).hash;
    await joiner.goto(`${APP}${fragment}`);
    return fragment;
  }
  assert.match(await followMail("owner@bolt.test"), /^#\/verify\//);
  await ready(joiner, "verify");
  await joiner.getByText("your address is confirmed").waitFor();
  await axe(joiner, "confirm your address");

  await joiner.goto(`${APP}#/forgot`);
  await ready(joiner, "forgot");
  await axe(joiner, "forgot password");
  await shot(joiner, "forgot");
  await joiner.getByLabel("Email").fill("owner@bolt.test");
  await joiner.getByRole("button", { name: "Send me a link" }).click();
  await joiner.getByRole("status").getByText("If an account has this email").waitFor();
  const resetLink = await followMail("owner@bolt.test");
  assert.match(resetLink, /^#\/reset\//);
  await ready(joiner, "reset");
  await axe(joiner, "choose a new password");
  await shot(joiner, "reset");
  await joiner.getByLabel("New password").fill("a new password for Bolt");
  await joiner.getByRole("button", { name: "Set my new password" }).click();
  await joiner.getByRole("heading", { name: "Password changed" }).waitFor();
  await joiner.getByRole("link", { name: "Sign in" }).click();
  // The reset signed every session out, this browser's too.
  await ready(joiner, "signin");
  await joiner.getByLabel("Email").fill("owner@bolt.test");
  await joiner.getByLabel("Password").fill("a new password for Bolt");
  await joiner.getByRole("button", { name: "Sign in" }).click();
  await ready(joiner, "overview");
  // The same link a second time is refused.
  await joiner.goto(`${APP}${resetLink}`);
  await ready(joiner, "reset");
  await joiner.getByLabel("New password").fill("one more password");
  await joiner.getByRole("button", { name: "Set my new password" }).click();
  await joiner.getByRole("alert").getByText("does not work any more").waitFor();
  await newcomer.close();

  // Signing out sends the browser to sign in; the pages stay closed.
  await agentPage.getByRole("button", { name: "Sign out" }).click();
  await ready(agentPage, "signin");
  await agentPage.goto(`${APP}#/conversations`);
  await ready(agentPage, "signin");

  // "Sign out everywhere" on the Account page ends the owner's other
  // browser's session too.
  const elsewhere = await newContext();
  const other = watch(await elsewhere.newPage(), "owner elsewhere");
  await other.goto(APP);
  await ready(other, "signin");
  await signIn(other, OWNER);
  await ready(other, "overview");
  await go(page, "account");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Sign out everywhere" }).click();
  await ready(page, "signin");
  await other.goto(`${APP}#/faqs`);
  await ready(other, "signin");
  await page.goto(`${APP}#/conversations`);
  await ready(page, "signin");

  assert.deepEqual(problems, [], "no CSP refusal or script error");
  console.log("dashboard e2e: every check passed");
} catch (e) {
  // The owner's page as it was when the test failed, to see why.
  if (process.env.FAILURE_SHOT && page) await page.screenshot({ path: process.env.FAILURE_SHOT, fullPage: true });
  throw e;
} finally {
  await browser.close();
}
