// office_day.js — an agent's day at the back office, then the hostile requests (issue 18,
// item 5). Started by office_day.sh, which has set up the system and exports:
//   OFFICE_URL, OFFICE_{ADMIN,POOL,LIBRARY}_PASSWORD, OFFICE_POOL_PASS (Alice's pool pass),
//   OFFICE_LIBRARY_PASS (a library-only pass), HIL, OFFICE_BENCH and OFFICE_DESK (the
//   office's bench, its desk reader and the desk's name), BENCH (the gates' bench), ADMIN,
//   CITYPASS_DATA (the CLI on the same deployment), T (the scenario's directory).
// Every step's page is kept as a screenshot (lib.js). Each hostile request is checked both
// in the answer (status, message) and in the database through the CLI: refused means
// nothing changed.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { main } = require('./lib');
const { Bench } = require('./bench');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (office_day.sh sets it)`);
  return v;
};
const URL = env('OFFICE_URL');
const GATE = 'pool-1';

// Text typed into every text field: markup that would run (and say so through a page-level
// flag and a dialog) if it were ever rendered as HTML, and SQL that would widen a query
// or drop a table if it were ever spliced into one.
const HOSTILE = `Zoé <script>window.__pwned=1</script><img src=x onerror="window.__pwned=1;alert(1)">' OR '1'='1' --; DROP TABLE pass;--`;

function admin(...args) {
  return execFileSync(env('ADMIN'), args, { encoding: 'utf8', timeout: 60000 });
}
// `pass show ID` as the CLI prints it: the line "state: ..."
function passState(id) {
  const m = admin('pass', 'show', String(id)).match(/^state: (.*)$/m);
  return m ? m[1] : '?';
}
function passCount() {
  return JSON.parse(admin('pass', 'list', '--json')).length;
}

// the list version the gate holds (its list store's CURRENT file), 0 before any
function gateVersion() {
  try {
    const c = fs.readFileSync(path.join(env('T'), `state-${GATE}`, 'lists', 'CURRENT'), 'utf8');
    const m = c.match(/^version ([0-9]+)/m);
    return m ? Number(m[1]) : 0;
  } catch (_) {
    return 0;
  }
}
async function gateNewerThan(v, what) {
  for (const deadline = Date.now() + 20000; gateVersion() <= v; ) {
    if (Date.now() > deadline) throw new Error(`the gate still holds list v${gateVersion()} 20 s after ${what}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

// What the hostile text would leave if it were ever rendered as HTML: the flag its script
// sets if it ran, and the elements it brings. Two layers hold it back — the office's
// escaping and its Content-Security-Policy (no inline script runs even if one got in) —
// so both are looked at: an injected element is found even where the CSP stops it running.
async function pwned(page) {
  return page.evaluate(() => {
    if (window.__pwned !== undefined) return `a script ran (window.__pwned = ${window.__pwned})`;
    const bad = [...document.querySelectorAll('script, img[src="x"], [onerror], [onload]')];
    if (bad.length) return `an injected element is in the page: ${bad[0].outerHTML.slice(0, 80)}`;
    return undefined;
  });
}

// Submits the form holding `button` and waits for the answer page.
async function submit(page, button) {
  await Promise.all([page.waitForNavigation(), page.click(button)]);
}

async function login(run, page, login, password, step) {
  await page.goto(`${URL}/connexion`);
  await page.type('#identifiant', login);
  await page.type('#mot_de_passe', password);
  if (step) await run.shot(page, step);
  await submit(page, '#connexion');
}

// A form forged in the page and posted (same origin, the session's cookie), as a replayed
// or hand-made form would be: the answer's HTTP status and its text. A form, not fetch():
// the office's Content-Security-Policy (default-src 'none') forbids scripts' requests, and
// forms are what a forger gets past form-action 'self'.
async function post(page, action, fields) {
  const [resp] = await Promise.all([
    page.waitForNavigation(),
    page.evaluate(
      (action, fields) => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = action;
        for (const [k, v] of Object.entries(fields)) {
          const i = document.createElement('input');
          i.type = 'hidden';
          i.name = k;
          i.value = v;
          f.appendChild(i);
        }
        document.body.appendChild(f);
        f.submit();
      },
      action,
      fields,
    ),
  ]);
  return { status: resp ? resp.status() : 0, text: await page.evaluate(() => document.body.innerText) };
}
async function csrfOf(page) {
  return page.$eval('input[name=csrf]', (e) => e.value);
}
async function text(page, sel) {
  return page.$eval(sel, (e) => e.textContent.trim());
}
async function has(page, sel) {
  return (await page.$(sel)) !== null;
}
// true once the element with this id has the focus (its autofocus applied): the keyboard
// types into whatever has it, and a slow page (an ASan build, a loaded machine) gives it a
// moment after the load event; false after 10 s
async function focusOn(page, id) {
  try {
    await page.waitForFunction((i) => document.activeElement && document.activeElement.id === i,
      { timeout: 10000 }, id);
    return true;
  } catch (e) {
    return false;
  }
}

main('office_day', async (run) => {
  const desk_ = new Bench(env('HIL'), env('OFFICE_BENCH')); // the office's desk reader
  const gates = new Bench(env('HIL'), env('BENCH')); // the pool's gate
  const alice = env('OFFICE_POOL_PASS');
  const libPass = env('OFFICE_LIBRARY_PASS');
  await run.connect();

  // --- the day --------------------------------------------------------------------------
  // the keyboard alone: the login field has the focus, Tab to the password, Enter; the
  // search field has the focus on the first page, Enter
  const desk = await run.newPage();
  await desk.goto(`${URL}/connexion`);
  run.check(await focusOn(desk, 'identifiant'), 'the login field has the focus on arrival');
  await desk.keyboard.type('agent-piscine');
  await desk.keyboard.press('Tab');
  await desk.keyboard.type(env('OFFICE_POOL_PASSWORD'));
  await run.shot(desk, 'connexion');
  await Promise.all([desk.waitForNavigation(), desk.keyboard.press('Enter')]);
  run.check(await has(desk, '#deconnexion'), 'the pool agent logged in with the keyboard alone');
  await run.shot(desk, 'accueil');
  run.check(await focusOn(desk, 'q'), 'the search field has the focus on the first page');
  await desk.keyboard.type('Alice');
  await Promise.all([desk.waitForNavigation(), desk.keyboard.press('Enter')]);
  await run.shot(desk, 'recherche');
  const found = await desk.$$eval('#resultats a[href^="/pass/"]', (as) => as.map((a) => a.getAttribute('href')));
  run.check(found.includes(`/pass/${alice}`), `searching "Alice" finds her pass n° ${alice}`);

  // Chloé's pass, with a pool right, issued on a factory-fresh card at the desk reader
  const card = path.join(env('T'), 'chloe.card');
  desk_.place('desk', 'desfire', card, 'uid=04D1D2D3D4D5D6');
  await desk.goto(`${URL}/pass/nouveau`);
  await desk.type('#titulaire', 'Chloé Dubois');
  await desk.select('#secteur', 'pool');
  await desk.click('#support-carte');
  await desk.select('select[name=lecteur]', env('OFFICE_DESK'));
  await run.shot(desk, 'nouveau-pass');
  let v = gateVersion();
  await submit(desk, '#emettre');
  desk_.remove('desk');
  await run.shot(desk, 'pass-cree');
  run.check(await has(desk, '.ok'), `the office issued the card: "${await text(desk, '.ok')}"`);
  const chloe = (await text(desk, '.ok')).match(/Pass n° ([0-9]+)/)[1];
  run.check(/carte/i.test(await text(desk, '#contenu')), `pass n° ${chloe} is on a card`);
  await gateNewerThan(v, 'the card was issued');
  const granted = await gates.tap(GATE, 'desfire', card);
  run.check(/relay=open led=green/.test(granted), `Chloé's new card opens the pool gate (${granted})`);

  // lost: revoked at the desk, refused at the gate
  run.check(/^valide/.test(await text(desk, "#etat")), `pass n° ${chloe} is valid (${await text(desk, '#etat')})`);
  v = gateVersion();
  await desk.select('#motif', 'perdue');
  await submit(desk, '#revoquer');
  await run.shot(desk, 'pass-revoque');
  run.check(await has(desk, '.ok'), `revoked: "${await text(desk, '.ok')}"`);
  run.check(/révoqué/i.test(await text(desk, '#etat')), `the pass page says revoked (${await text(desk, '#etat')})`);
  run.check(/^revoked/.test(passState(chloe)), `the CLI agrees: ${passState(chloe)}`);
  await gateNewerThan(v, 'the revocation');
  const refused = await gates.tap(GATE, 'desfire', card);
  run.check(/relay=closed led=red display=Carte révoquée/.test(refused), `the lost card is refused at the gate (${refused})`);

  // replaced on a new card at the desk: a new pass with the same rights
  const card2 = path.join(env('T'), 'chloe2.card');
  desk_.place('desk', 'desfire', card2, 'uid=04E1E2E3E4E5E6');
  await desk.type('#motif_r', 'carte perdue, nouvelle carte');
  await desk.click('form[action$="/remplacer"] input[name=support][value=carte]');
  await desk.select('form[action$="/remplacer"] select[name=lecteur]', env('OFFICE_DESK'));
  v = gateVersion();
  await submit(desk, '#remplacer');
  desk_.remove('desk');
  await run.shot(desk, 'pass-remplace');
  run.check(await has(desk, '.ok'), `replaced: "${await text(desk, '.ok')}"`);
  const repl = (await text(desk, '.ok')).match(/Pass n° ([0-9]+) remplacé/);
  run.check(repl !== null && repl[1] === chloe, `the message names the old pass n° ${chloe}`);
  const rights = (await text(desk, '#droits')).replace(/\s+/g, ' ');
  run.check(/pool/.test(rights), `the new pass keeps the pool right (${rights})`);
  run.check(/^replaced/.test(passState(chloe)), `the old pass is replaced (${passState(chloe)})`);
  await gateNewerThan(v, 'the replacement');
  const old = await gates.tap(GATE, 'desfire', card);
  run.check(/relay=closed led=red/.test(old), `the old card is still refused (${old})`);
  const ok2 = await gates.tap(GATE, 'desfire', card2);
  run.check(/relay=open led=green/.test(ok2), `the new card opens the gate (${ok2})`);

  // the charts: once the gate's four decisions (two granted, two refused) reached the server
  const decisions = () =>
    admin('stats', '--by', 'outcome', '--format', 'csv')
      .trim()
      .split('\n')
      .slice(1)
      .reduce((n, l) => n + Number(l.split(',').pop()), 0);
  for (const deadline = Date.now() + 30000; decisions() < 4; ) {
    if (Date.now() > deadline) throw new Error(`the server holds ${decisions()} decisions of the gate's 4 after 30 s`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
  await desk.goto(`${URL}/statistiques`);
  await run.shot(desk, 'statistiques');
  const charts = await desk.$$eval('svg', (svgs) =>
    svgs.map((g) => ({
      cls: g.getAttribute('class'),
      role: g.getAttribute('role'),
      label: g.getAttribute('aria-label'),
      bars: [...g.querySelectorAll('.barre title')].map((t) => t.textContent),
      // the values as written beside the bars (French digit groups: spaces taken out)
      sum: [...g.querySelectorAll('.valeur')].reduce((n, t) => n + Number(t.textContent.replace(/\s/g, '')), 0),
    })),
  );
  if (charts.some((c) => c.cls === 'graphique')) {
    // the server's SVG charts (office/chart.h): named for a screen reader, numbers as text
    run.check(charts.every((c) => c.role === 'img' && c.label), `every chart is an image with a name (${charts.map((c) => c.label).join(', ')})`);
    run.check(charts.some((c) => c.bars.some((t) => /piscine/.test(t))), 'a chart has a bar for the pool site, its value written out');
    const byOutcome = charts.find((c) => c.label === 'Passages par résultat');
    run.check(byOutcome && byOutcome.sum === 4, `the chart by outcome counts the gate's 4 decisions (${byOutcome ? byOutcome.bars.join(', ') : 'no such chart'})`);
  } else {
    const site = await desk.$$eval('#stats-sites tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent.trim())));
    run.check(site.some((r) => r[0] === 'piscine' && r.includes('2')), `the statistics count the gate's decisions by site (${JSON.stringify(site)})`);
  }

  // --- hostile: a pool agent forging library requests -------------------------------------
  const before = passState(libPass);
  let r = await desk.goto(`${URL}/pass/${libPass}`);
  await run.shot(desk, 'pool-voit-biblio');
  run.check(r.status() === 404 || r.status() === 403, `the pool agent cannot open library pass n° ${libPass} (HTTP ${r.status()})`);
  await desk.goto(`${URL}/`);
  const token = await csrfOf(desk);
  r = await post(desk, `/pass/${libPass}/revoquer`, { csrf: token, motif: 'perdue' });
  run.check(r.status === 404 || r.status === 403, `a forged revoke of the library pass with a valid token is refused (HTTP ${r.status})`);
  r = await post(desk, `/pass/${libPass}/remplacer`, { csrf: token, motif: 'x' });
  run.check(r.status === 404 || r.status === 403, `a forged replace of the library pass is refused (HTTP ${r.status})`);
  r = await post(desk, `/pass/${alice}/droit`, { csrf: token, secteur: 'library' });
  run.check(r.status >= 400, `a library right granted by the pool agent is refused (HTTP ${r.status})`);
  run.check(passState(libPass) === before, `the library pass is unchanged (${passState(libPass)})`);
  run.check(!/library/.test(admin('pass', 'show', alice)), "Alice's pass got no library right");
  await desk.goto(`${URL}/`);
  await desk.type('#q', 'Bruno');
  await submit(desk, '#chercher');
  const seen = await desk.$$eval('#resultats a[href^="/pass/"]', (as) => as.length);
  run.check(seen === 0, 'searching the library holder\'s name finds nothing for the pool agent');

  // --- hostile: a form replayed without its CSRF token ------------------------------------
  const aliceBefore = passState(alice);
  r = await post(desk, `/pass/${alice}/revoquer`, { motif: 'perdue' });
  run.check(r.status === 403 || r.status === 400, `a revoke without its csrf token is refused (HTTP ${r.status})`);
  r = await post(desk, `/pass/${alice}/revoquer`, { csrf: 'A'.repeat(token.length), motif: 'perdue' });
  run.check(r.status === 403 || r.status === 400, `a revoke with a wrong token is refused (HTTP ${r.status})`);
  r = await post(desk, '/pass/nouveau', { titulaire: 'Sans Jeton', secteur: 'pool' });
  run.check(r.status === 403 || r.status === 400, `an issue without its token is refused (HTTP ${r.status})`);
  run.check(passState(alice) === aliceBefore, `Alice's pass is unchanged (${passState(alice)})`);
  run.check(!/Sans Jeton/.test(admin('pass', 'list')), 'no pass was created without a token');
  // another agent's token is not this session's
  const lib = await run.newPage();
  await login(run, lib, 'agent-biblio', env('OFFICE_LIBRARY_PASSWORD'));
  const libToken = await csrfOf(lib);
  r = await post(desk, `/pass/${alice}/revoquer`, { csrf: libToken, motif: 'perdue' });
  run.check(r.status === 403 || r.status === 400, `a revoke with another session's token is refused (HTTP ${r.status})`);
  run.check(passState(alice) === aliceBefore, `Alice's pass is still unchanged (${passState(alice)})`);

  // --- hostile: SQL and HTML in every text field -----------------------------------------
  const count = passCount();
  // the login form (both fields): refused, nothing runs
  const anon = await run.newPage();
  await login(run, anon, HOSTILE, HOSTILE);
  await run.shot(anon, 'injection-connexion');
  run.check(await has(anon, '.erreur'), 'a login with markup and SQL is refused with an error');
  run.check(!(await has(anon, '#deconnexion')), 'and nobody is logged in');
  run.check((await pwned(anon)) === undefined, 'nothing injected ran on the login page', await pwned(anon));
  await login(run, anon, "admin' --", 'x');
  run.check(!(await has(anon, '#deconnexion')), "\"admin' --\" does not log in");
  // search
  await desk.goto(`${URL}/`);
  await desk.type('#q', HOSTILE);
  await submit(desk, '#chercher');
  await run.shot(desk, 'injection-recherche');
  run.check((await pwned(desk)) === undefined, 'nothing injected ran on the search page', await pwned(desk));
  run.check((await desk.$eval('#q', (e) => e.value)) === HOSTILE, 'the search field gives the text back as typed');
  run.check((await desk.$$('#resultats a[href^="/pass/"]')).length === 0, "\"' OR '1'='1\" finds no pass");
  // a new pass: the holder's name is free text, kept and shown as typed
  await desk.goto(`${URL}/pass/nouveau`);
  await desk.type('#titulaire', HOSTILE);
  await desk.select('#secteur', 'pool');
  await submit(desk, '#emettre');
  await run.shot(desk, 'injection-pass');
  run.check((await pwned(desk)) === undefined, 'nothing injected ran on the new pass page', await pwned(desk));
  const zoe = (await has(desk, '.ok')) ? (await text(desk, '.ok')).match(/Pass n° ([0-9]+)/) : null;
  run.check(zoe !== null, 'the pass with a hostile name was created (names are text)');
  run.check((await text(desk, '#titulaire')) === HOSTILE, 'its holder is shown exactly as typed');
  run.check(passCount() === count + 1, 'the passes are all still there, one more');
  run.check(admin('pass', 'show', zoe[1]).includes(HOSTILE), 'the database holds the name exactly as typed');
  // household names: refused by their grammar, in the issue form and the households page
  await desk.goto(`${URL}/pass/nouveau`);
  await desk.type('#titulaire', 'Yves Hostile');
  await desk.type('#foyer_nom', HOSTILE.slice(0, 63));
  await desk.select('#secteur', 'pool');
  await submit(desk, '#emettre');
  run.check(await has(desk, '.erreur'), `a household name with markup is refused: "${await text(desk, '.erreur')}"`);
  run.check((await pwned(desk)) === undefined, 'nothing injected ran after the household field', await pwned(desk));
  await desk.goto(`${URL}/foyers`);
  await desk.type('#nom', HOSTILE.slice(0, 63));
  await submit(desk, '#foyer');
  await run.shot(desk, 'injection-foyer');
  run.check(await has(desk, '.erreur'), `a household created with markup is refused: "${await text(desk, '.erreur')}"`);
  run.check((await pwned(desk)) === undefined, 'nothing injected ran on the households page', await pwned(desk));
  run.check(passCount() === count + 1, 'no pass was created by the refused forms');
  // the date and number fields of a right: refused with a sentence. Posted as forged forms:
  // a date input takes no typed text in a browser, a forger's form takes anything
  await desk.goto(`${URL}/pass/${zoe[1]}`);
  for (const f of ['du', 'au', 'entrees', 'quota']) {
    r = await post(desk, `/pass/${zoe[1]}/droit`, { csrf: await csrfOf(desk), secteur: 'pool', [f]: HOSTILE, periode: 'annee' });
    run.check(r.status === 400 && (await has(desk, '.erreur')), `markup in "${f}" is refused (HTTP ${r.status}): "${(await has(desk, '.erreur')) ? await text(desk, '.erreur') : ''}"`);
    run.check((await pwned(desk)) === undefined, `nothing injected ran after "${f}"`, await pwned(desk));
  }
  // the replace reason, then the audit log where the administrator reads it all
  await desk.goto(`${URL}/pass/${zoe[1]}`);
  await desk.type('#motif_r', HOSTILE);
  await submit(desk, '#remplacer');
  run.check((await pwned(desk)) === undefined, 'nothing injected ran after the replace reason', await pwned(desk));
  const boss = await run.newPage();
  await login(run, boss, 'admin', env('OFFICE_ADMIN_PASSWORD'));
  await boss.goto(`${URL}/audit`);
  await run.shot(boss, 'audit');
  run.check((await pwned(boss)) === undefined, 'nothing injected ran in the audit log', await pwned(boss));
  const audit = await boss.$$eval('#audit tbody tr', (rows) => rows.map((r) => r.innerText));
  run.check(audit.some((l) => l.includes(`\t${libPass}\t`) && /refusé/.test(l)),
    `the audit log holds the pool agent's refused request on library pass n° ${libPass}`);
  await boss.goto(`${URL}/`);
  await boss.type('#q', 'Zoé');
  await submit(boss, '#chercher');
  await run.shot(boss, 'injection-resultats');
  const rows = await boss.$$eval('#resultats tbody tr', (rs) => rs.map((r) => r.innerText));
  run.check(rows.some((l) => l.includes(HOSTILE)), 'the administrator finds the hostile name, shown as text');
  run.check((await pwned(boss)) === undefined, 'nothing injected ran in the search results', await pwned(boss));

  // --- hostile: a session cookie reused after logout ----------------------------------------
  const cookies = await desk.cookies();
  const session = cookies.find((c) => c.name === 'citypass_session');
  run.check(session && session.httpOnly && session.secure && session.sameSite === 'Strict',
    'the session cookie is HttpOnly, Secure, SameSite=Strict');
  const oldToken = await csrfOf(desk);
  await submit(desk, '#deconnexion');
  await run.shot(desk, 'deconnexion');
  run.check(!(await has(desk, '#deconnexion')), 'logged out');
  const thief = await run.newPage();
  await thief.setCookie({ name: 'citypass_session', value: session.value, url: URL, secure: true, httpOnly: true, sameSite: 'Strict' });
  await thief.goto(`${URL}/pass/${alice}`);
  await run.shot(thief, 'cookie-apres-deconnexion');
  run.check(!(await has(thief, '#deconnexion')) && /\/connexion/.test(thief.url()),
    `the old cookie opens nothing after logout (landed on ${thief.url().replace(URL, '')})`);
  r = await post(thief, `/pass/${alice}/revoquer`, { csrf: oldToken, motif: 'perdue' });
  run.check(r.status === 403 || r.status === 303 || r.status === 0 || r.status === 401,
    `a revoke with the old cookie and its token is refused (HTTP ${r.status})`);
  run.check(passState(alice) === aliceBefore, `Alice's pass is unchanged (${passState(alice)})`);
});
