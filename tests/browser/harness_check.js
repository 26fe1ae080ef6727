// harness_check.js — the harness proven on a page of its own, before and beside the back
// office: the browser starts (chromium, or Firefox), puppeteer-core drives it (DevTools
// protocol, or WebDriver BiDi), a form posts, a screenshot is written, and the test's
// detector of executed injected script sees a script that does run (so that its silence in
// the back office's tests means something).
'use strict';

const http = require('http');
const { main } = require('./lib');

const esc = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(body) {
  return `<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Harnais</title></head>
<body><main id="contenu">${body}</main></body></html>`;
}

const FORM = `<form method="post" action="/echo"><label>Nom <input name="nom" id="nom"></label>
<button id="envoyer">Envoyer</button></form>`;

// /echo escapes what it echoes; /echo-raw does not (the negative control)
function serve(req, res) {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page(FORM));
  }
  if (req.method === 'POST' && (req.url === '/echo' || req.url === '/echo-raw')) {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const nom = new URLSearchParams(data).get('nom') || '';
      const shown = req.url === '/echo' ? esc(nom) : nom;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page(`<p class="ok" id="vu">Bonjour ${shown}</p>`));
    });
    return undefined;
  }
  res.writeHead(404);
  return res.end('introuvable');
}

main('browser_harness', async (run) => {
  const server = http.createServer(serve);
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    await run.connect();
    const version = await run.browser.version();
    // the browser browser_run.sh says it started is the one that answers, by its own name
    // and in its user agent (what a web server sees)
    const firefox = process.env.CITYPASS_BROWSER_NAME === 'firefox';
    run.check((firefox ? /firefox/i : /Chrom/).test(version), `connected to ${version}`);
    run.check((firefox ? /Firefox\// : /Chrome\//).test(run.userAgent), `its user agent says so: ${run.userAgent}`);
    const page = await run.newPage();

    await page.goto(`${base}/`);
    await run.shot(page, 'harness-form');
    const hostile = `<img src=x onerror="window.__injected=1"><script>window.__injected=1</script>`;
    await page.type('#nom', hostile);
    await Promise.all([page.waitForNavigation(), page.click('#envoyer')]);
    await run.shot(page, 'harness-escaped');
    const shown = await page.$eval('#vu', (e) => e.textContent);
    run.check(shown === `Bonjour ${hostile}`, 'an escaped echo shows the text as typed');
    run.check((await page.evaluate(() => window.__injected)) === undefined, 'the escaped echo ran no script');

    // the control: the same text echoed raw does run, and the detector sees it
    await page.goto(`${base}/`);
    await page.$eval('form', (f) => f.setAttribute('action', '/echo-raw'));
    await page.type('#nom', hostile);
    await Promise.all([page.waitForNavigation(), page.click('#envoyer')]);
    await page.waitForFunction(() => window.__injected === 1, { timeout: 10000 }).catch(() => {});
    run.check((await page.evaluate(() => window.__injected)) === 1, 'a raw echo runs the script, and the detector sees it');
  } finally {
    server.close();
  }
});
