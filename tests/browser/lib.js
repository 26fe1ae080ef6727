// lib.js — what every browser test shares (issue 18, item 5).
//
// The browser is started by tests/support/browser_run.sh, which owns its life; a test
// only connects to it (CITYPASS_BROWSER_WS). puppeteer-core is found through NODE_PATH:
// it is installed by `npm ci` into the build tree (tests/browser/CMakeLists.txt), never
// into the sources.
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

// Each step's screenshot goes to CITYPASS_ARTIFACTS (build/tests/artifacts/office, or
// office-firefox, by default), named NN-step.png in the order taken, so the directory reads like the day.
class Run {
  constructor(name) {
    this.name = name;
    this.dir = process.env.CITYPASS_ARTIFACTS;
    if (!this.dir) throw new Error('CITYPASS_ARTIFACTS is not set (tests/browser/CMakeLists.txt sets it)');
    fs.mkdirSync(this.dir, { recursive: true });
    this.shots = 0;
    this.checks = 0;
  }

  async connect() {
    const ws = process.env.CITYPASS_BROWSER_WS;
    if (!ws) throw new Error('CITYPASS_BROWSER_WS is not set: run under tests/support/browser_run.sh');
    // cdp for chromium, webDriverBiDi for Firefox (browser_run.sh says which it started)
    const protocol = process.env.CITYPASS_BROWSER_PROTOCOL || 'cdp';
    // protocolTimeout: a shared 2-core machine can be slow; a hung page still ends the test
    this.browser = await puppeteer.connect({ browserWSEndpoint: ws, protocol, protocolTimeout: 60000 });
    // in the log, which browser really ran the test (its own words, not the script's)
    this.version = await this.browser.version();
    this.userAgent = await this.browser.userAgent();
    console.log(`${this.name}: ${this.version} over ${protocol}, user agent "${this.userAgent}"`);
    return this.browser;
  }

  // A fresh incognito-like context: its own cookies, so two agents never share a session.
  async newPage() {
    const ctx = await this.browser.createBrowserContext();
    const page = await ctx.newPage();
    page.setDefaultTimeout(30000);
    page.setDefaultNavigationTimeout(30000);
    await page.setViewport({ width: 1280, height: 900 });
    // any dialog (alert, confirm) is something a test did not expect: an injected script
    page.on('dialog', async (d) => {
      this.dialogs = (this.dialogs || 0) + 1;
      console.error(`${this.name}: unexpected dialog "${d.message()}"`);
      await d.dismiss();
    });
    page.on('pageerror', (e) => console.error(`${this.name}: page error: ${e.message}`));
    this.pages = (this.pages || []).concat([page]);
    return page;
  }

  async shot(page, step) {
    this.shots += 1;
    const file = path.join(this.dir, `${String(this.shots).padStart(2, '0')}-${step}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`  screenshot ${path.relative(process.cwd(), file)}`);
    return file;
  }

  // why: what was seen instead, for the failure's message
  check(cond, what, why) {
    this.checks += 1;
    if (!cond) throw new Error(`FAILED: ${what}${why ? ` (${why})` : ''}`);
    console.log(`  ok ${this.checks} - ${what}`);
  }

  async close() {
    if (this.browser) await this.browser.disconnect();
  }
}

// Runs main(run) and turns any failure into exit status 1 with its message; the browser is
// disconnected, never closed (browser_run.sh stops it).
function main(name, body) {
  const run = new Run(name);
  body(run)
    .then(async () => {
      await run.close();
      if (run.dialogs) {
        console.error(`${name}: ${run.dialogs} unexpected dialog(s)`);
        process.exit(1);
      }
      console.log(`${name}: ${run.checks} checks passed, ${run.shots} screenshots in ${run.dir}`);
      process.exit(0);
    })
    .catch(async (e) => {
      console.error(`${name}: ${e && e.stack ? e.stack : e}`);
      try {
        // what each page showed when the test failed, and where it was
        for (const [i, p] of (run.pages || []).entries()) {
          console.error(`${name}: page ${i + 1} at ${p.url()}`);
          await run.shot(p, `echec-page${i + 1}`);
        }
      } catch (_) {
        /* a page that cannot be captured: the failure above is the one to report */
      }
      try {
        await run.close();
      } catch (_) {
        /* the failure above is the one to report */
      }
      process.exit(1);
    });
}

module.exports = { Run, main };
