// The customer admin's whole setup flow in a real browser (Debian's
// Chromium, driven by playwright-core), against a running daemon. Started by
// the end-to-end test `ui::a_customer_admin_sets_up_the_feed_...`, which
// provides the daemon, the database, moto and these variables:
//
//   UF_BASE          the admin listener, e.g. http://127.0.0.1:8081
//   UF_TOKEN         the tenant admin's API token (tenant acme)
//   UF_OPS_TOKEN     a platform token
//   UF_OTHER_UPLOAD  the path of another tenant's upload page (must be 404)
//   UF_SAMPLE        a sample export (read for the mapping, never applied)
//   UF_FIRST         the first drop: 30 people, one with a broken email
//   UF_SHRUNK        the second drop: 10 people (deactivates 20: held)
//   UF_AWS_CLI       the AWS CLI; UF_AWS_ENDPOINT its endpoint (moto)
//   UF_SHOTS         where the screenshots go
//   UF_CHROMIUM      the browser binary
//
// Every step checks what the page says; the first failed check ends the
// run with a non-zero exit and the reason. At every screenshot the page is
// also checked at 1280x800 and at 800x900 (a screenshot of each): no page
// scrolls sideways (a wide table scrolls inside its own box), and axe-core
// finds no serious or critical accessibility violation.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// axe-core's browser build, evaluated in each page (through the DevTools
// protocol, which the screens' strict CSP does not govern).
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('UF_BASE');
const SHOTS = env('UF_SHOTS');
mkdirSync(SHOTS, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const browser = await chromium.launch({
  executablePath: env('UF_CHROMIUM'),
  args: ['--no-sandbox'],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 800 },
  acceptDownloads: true,
});
const page = await context.newPage();
let shot = 0;
const WIDE = { width: 1280, height: 800 };
const NARROW = { width: 800, height: 900 };
async function noSidewaysScroll(size, name) {
  const { scroll, inner, widest } = await page.evaluate(() => {
    // What sticks out, to say in the failure.
    const out = [...document.querySelectorAll('main *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + e.className : ''}`);
    return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth, widest: out.slice(0, 5).join(' ') };
  });
  check(scroll <= inner, `${name} fits ${size.width} px without scrolling sideways (${scroll} <= ${inner}) ${widest}`);
}
async function accessible(name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  check(violations.length === 0, `${name} has no serious accessibility violation ${violations.join('; ')}`);
}
async function screenshot(name) {
  shot += 1;
  const base = `${String(shot).padStart(2, '0')}-${name}`;
  await noSidewaysScroll(WIDE, name);
  await accessible(name);
  await page.screenshot({ path: join(SHOTS, `${base}.png`) });
  await page.setViewportSize(NARROW);
  await noSidewaysScroll(NARROW, name);
  await page.screenshot({ path: join(SHOTS, `${base}-800.png`) });
  await page.setViewportSize(WIDE);
  console.log(`screenshot ${join(SHOTS, base)}.png (and -800)`);
}
const text = async () => (await page.locator('main').innerText()).replace(/\s+/g, ' ');

async function signIn(token) {
  await page.goto(`${BASE}/ui/`);
  check(page.url().endsWith('/ui/sign-in'), 'an unsigned visitor is sent to sign in');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

try {
  // Sign in with the tenant's token: a session cookie, HTTP-only.
  await page.goto(`${BASE}/ui/sign-in`);
  const headers = (await page.request.get(`${BASE}/ui/sign-in`)).headers();
  check(headers['content-security-policy']?.includes("frame-ancestors 'none'"), 'a strict CSP');
  check(headers['x-content-type-options'] === 'nosniff', 'nosniff');
  await screenshot('sign-in');
  await signIn(env('UF_TOKEN'));
  check(page.url().endsWith('/ui/t/acme'), 'the tenant admin lands on their history');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === '__Host-userfeed_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HTTP-only and SameSite=Strict');
  check(/No uploads yet/.test(await text()), 'an empty history says so');

  // Get started: a sample file, then the mapping from the drop-downs.
  await page.getByRole('link', { name: 'Get started' }).click();
  await screenshot('get-started');
  await page.getByLabel('Sample file (CSV)').setInputFiles(env('UF_SAMPLE'));
  await page.getByRole('button', { name: 'Upload sample' }).click();
  check(/Map your columns/.test(await page.locator('h1').innerText()), 'the mapping screen follows the sample');
  const chosen = async (label) =>
    page.getByLabel(label, { exact: true }).evaluate((s) => s.options[s.selectedIndex].text);
  check((await chosen('Email')) === 'Work Email', 'Email is pre-selected from the header');
  check((await chosen('Employee ID')) === 'Employee Number', 'Employee ID is pre-selected');
  check((await chosen('department')) === 'Department', 'the custom profile field is pre-selected by name');
  check((await chosen('Status')) === '(not in the file)', 'a field the file lacks is left unmapped');
  const preview = await page.locator('table').innerText();
  check(preview.includes('person1@example.com') && preview.includes('Pref5'), "the file's first rows are shown");
  // Pick two from the drop-downs, as an admin would.
  await page.getByLabel('First name', { exact: true }).selectOption('Preferred Name');
  await page.getByLabel('Managers', { exact: true }).selectOption('Manager Email');
  await screenshot('mapping');
  await page.getByRole('button', { name: 'Save mapping' }).click();
  check(/Mapping saved/.test(await text()), 'the mapping is saved');

  // Connection details, and credentials whose secret is shown once.
  check(/aws s3 cp employees\.csv s3:\/\//.test(await text()), 'the upload command is shown');
  await page.getByRole('button', { name: 'Create upload credentials' }).click();
  const keyId = (await page.locator('#access-key-id').innerText()).trim();
  const secret = (await page.locator('#secret-access-key').innerText()).trim();
  check(/^[A-Z0-9]{16,}$/.test(keyId) && secret.length >= 20, 'a key ID and its secret are shown');
  check(/shown this once/.test(await text()), 'the page says the secret is shown once');
  await screenshot('credentials-created');
  await page.getByRole('link', { name: /back to the connection details/ }).click();
  check((await text()).includes(keyId) && !(await text()).includes(secret), 'afterwards only the key ID is shown');
  const target = (await page.locator('code').first().innerText()).match(/s3:\/\/\S+\//)[0];
  await screenshot('connection');

  // A drop with the AWS CLI, as the customer's export would do it.
  const aws = (file, key) =>
    execFileSync(env('UF_AWS_CLI'), ['--endpoint-url', env('UF_AWS_ENDPOINT'), 's3', 'cp', '--only-show-errors', file, target + key], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: keyId, AWS_SECRET_ACCESS_KEY: secret, AWS_SESSION_TOKEN: '' },
    });
  aws(env('UF_FIRST'), 'first.csv');
  async function waitInHistory(file, state) {
    for (let i = 0; i < 120; i++) {
      await page.goto(`${BASE}/ui/t/acme`);
      const row = page.locator('tr', { hasText: file });
      if ((await row.count()) > 0 && (await row.innerText()).includes(state)) return row;
      await page.waitForTimeout(500);
    }
    throw new Error(`${file} did not reach ${state} in the history`);
  }
  const first = await waitInHistory('first.csv', 'succeeded');
  const cells = (await first.locator('td').allInnerTexts()).map((c) => c.trim());
  // Upload, file, state, received, then the six counts.
  check(cells.slice(4, 10).join(',') === '30,29,0,0,0,1', 'the history shows the six counts with its rejected row');
  check(cells[1] === 'first.csv', 'the history shows the name the customer gave the file');
  await screenshot('history');

  // Its row problems, and the CSV download.
  await first.getByRole('link', { name: /^#/ }).click();
  check(/not-an-email/.test(await text()), 'the rejected row is listed with its reason');
  await screenshot('upload-detail');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /Download all row problems/ }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  check(/not-an-email/.test(csv) && csv.split('\n')[0].toLowerCase().includes('line'), 'the problems CSV downloads');

  // A shrunk export is held; approving deactivates the missing people.
  aws(env('UF_SHRUNK'), 'shrunk.csv');
  const held = await waitInHistory('shrunk.csv', 'held');
  await held.getByRole('link', { name: /^#/ }).click();
  check(/20 users would be deactivated/.test(await text()), 'the hold shows its numbers');
  const people = page.getByRole('table', { name: 'Who would be deactivated' }).locator('tbody tr');
  check((await people.count()) === 20, 'the hold lists the 20 people it would deactivate');
  check(/@/.test(await people.first().innerText()), 'each with their email');
  await screenshot('held');
  const [heldCsv] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download everyone as CSV' }).click(),
  ]);
  check(readFileSync(await heldCsv.path(), 'utf8').trim().split('\n').length === 21, 'the held people download as CSV');
  await page.getByRole('button', { name: 'Approve deactivations' }).click();
  check(/Approved: 20 users deactivated/.test(await text()), 'approving deactivates them');
  await screenshot('approved');
  await page.goto(`${BASE}/ui/t/acme`);
  check(/approved \(20 deactivated\)/.test(await text()), 'the history says the hold was approved for 20, not "succeeded"');

  // Preview a file: what it would do, nothing changed.
  await page.getByRole('link', { name: 'Preview a file' }).click();
  await page.getByLabel('File to preview (CSV)').setInputFiles(env('UF_FIRST'));
  await page.getByRole('button', { name: 'Preview', exact: true }).click();
  check(/Nothing has changed/.test(await text()), 'the preview says nothing changed');
  await screenshot('preview');

  // Upload a file from the screens: it goes where the drops go and applies.
  await page.getByRole('link', { name: 'Upload a file' }).click();
  await screenshot('upload-a-file');
  await page.getByLabel('File to upload (CSV)').setInputFiles({
    name: 'from the screens.csv',
    mimeType: 'text/csv',
    buffer: readFileSync(env('UF_FIRST')),
  });
  await page.getByRole('button', { name: 'Upload and apply' }).click();
  check(/from-the-screens\.csv was sent/.test(await text()), 'the upload says the file was sent');
  const sent = await waitInHistory('from-the-screens.csv', 'succeeded');
  check(/from-the-screens\.csv/.test(await sent.innerText()), 'the sent file is applied and listed by its name');

  // Undo of the newest upload, behind a confirmation showing its preview.
  await page.goto(`${BASE}/ui/t/acme`);
  await page.getByRole('link', { name: 'Undo…' }).click();
  check(/Made active again/.test(await text()), "the confirmation shows the undo's preview");
  check(/Would be made (inactive|active again) \(\d+\)/.test(await text()) && /@example\.com/.test(await text()),
    'the confirmation names the people the undo would change');
  await screenshot('undo-confirm');
  await page.getByRole('button', { name: /^Undo upload/ }).click();
  check(/was undone/.test(await text()), 'the undo is done and reported');

  // Another tenant's page is not found; a form without its token is refused.
  const other = await page.goto(`${BASE}${env('UF_OTHER_UPLOAD')}`);
  check(other.status() === 404, "another tenant's upload page is 404");
  const otherTenant = await page.goto(`${BASE}/ui/t/globex`);
  check(otherTenant.status() === 404, "another tenant's history is 404");
  const forged = await page.request.post(`${BASE}/ui/t/acme/credentials`, { form: { action: 'revoke' } });
  check(forged.status() === 403, 'a form posted without its CSRF token is refused (403)');
  const wrong = await page.request.post(`${BASE}/ui/t/acme/credentials`, { form: { action: 'revoke', csrf: 'x'.repeat(64) } });
  check(wrong.status() === 403, 'a form with a wrong CSRF token is refused (403)');
  // A forged undo of the newest upload, which a real form would perform:
  // refused, and the history is exactly as it was.
  await page.goto(`${BASE}/ui/t/acme`);
  const historyBefore = await page.locator('table tbody').innerText();
  const newest = await page.locator('table tbody a[href*="/uploads/"]').first().getAttribute('href');
  const forgedUndo = await page.request.post(`${BASE}${newest}/undo`, { form: { csrf: 'x'.repeat(64) } });
  check(forgedUndo.status() === 403, 'a forged undo is refused (403)');
  await page.goto(`${BASE}/ui/t/acme`);
  check((await page.locator('table tbody').innerText()) === historyBefore, 'a forged undo changes nothing');

  // Sign out; the platform operator's overview.
  await page.goto(`${BASE}/ui/t/acme`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  check(page.url().endsWith('/ui/sign-in'), 'signing out ends the session');
  await signIn(env('UF_OPS_TOKEN'));
  check(page.url().endsWith('/ui/ops'), 'a platform token lands on the overview');
  const ops = await text();
  check(/acme/.test(ops) && /globex/.test(ops) && /broken\.csv/.test(ops) && /undo/.test(ops), 'every tenant is listed with its last upload');
  check(/Failed and held, across tenants.*failed/.test(ops), 'failures across tenants are listed');
  check(/Queued/.test(ops) && /Oldest queued/.test(ops), 'the backlog is shown');
  await screenshot('ops-overview');
  console.log('the whole flow passed');
} catch (e) {
  await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(e.stack || String(e));
  console.error(`page: ${page.url()}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
