// The web page in headless Chromium against a real `genmint dev` stack (anvil, Kubo, a node with
// candle): an EIP-1193 provider injected into the page signs with a test key (secp256k1, through
// viem) and sends real transactions to anvil. The test walks the refusals (a wallet that declines,
// the wrong chain, a signature by another key, a setting out of range, a fee above the deposit),
// deposits, mints a token from the page, has `genmint verify` accept it, opens the token page and
// the gallery, runs the development wallet with no extension, checks accessibility with axe-core,
// and writes screenshots at desktop and phone widths.
//
// Environment: GENMINT_BIN (the genmint binary), GENMINT_BROWSER_DEPS (this folder's npm packages),
// GENMINT_SCREENSHOTS (where the screenshots go), CHROMIUM (the browser executable).
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const require = createRequire(join(process.env.GENMINT_BROWSER_DEPS, 'node_modules') + '/');
const puppeteer = require('puppeteer-core');
const { privateKeyToAccount } = require('viem/accounts');
const { createWalletClient, http, numberToHex } = require('viem');
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BIN = process.env.GENMINT_BIN;
const SHOTS = process.env.GENMINT_SCREENSHOTS;
const base = 20000 + Math.floor(Math.random() * 20000);
const PORTS = { http: base, anvil: base + 1, ipfs: base + 2, p2p: base + 3 };
const URL = `http://127.0.0.1:${PORTS.http}`;
const RPC = `http://127.0.0.1:${PORTS.anvil}`;
const CHAIN_ID = 31337;
// anvil's account 9 (funded, not used by genmint dev): the creator's wallet in this test.
const CREATOR = privateKeyToAccount('0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6');
// Another key: a real signature, by the wrong signer.
const STRANGER = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
const FEE = 1000n;

const started = Date.now();
let step = 0;
const log = (message) => console.log(`browser-test [${((Date.now() - started) / 1000).toFixed(1)} s] ${message}`);
function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
async function check(name, body) {
  step += 1;
  log(`${step}. ${name}`);
  await body();
}

/** Starts `genmint dev` (with `extra` arguments) in a new data dir; resolves once it says it is up. */
function startDev(extra = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'genmint-browser-'));
  const child = spawn(BIN, ['--data-dir', dataDir, 'dev', '--port', PORTS.http, '--anvil-port', PORTS.anvil,
    '--ipfs-port', PORTS.ipfs, '--p2p-port', PORTS.p2p, ...extra].map(String), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`genmint dev did not come up in 120 s:\n${output}`)), 120_000);
    const read = (chunk) => {
      output += chunk;
      if (output.includes('genmint dev is up') && output.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve({ child, dataDir, output: () => output });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`genmint dev exited (${code}):\n${output}`)));
  });
}

/** The wallet the page talks to: modes make it decline, sit on another chain, or sign with another key. */
function testWallet() {
  const client = createWalletClient({ account: CREATOR, transport: http(RPC) });
  const wallet = { mode: 'ok', calls: [] };
  const uints = (types, message) => Object.fromEntries(types.map(({ name, type }) =>
    [name, /^u?int/.test(type) ? BigInt(message[name]) : message[name]]));
  const rpc = async (method, params) => {
    const response = await fetch(RPC, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    const body = await response.json();
    if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code });
    return body.result;
  };
  wallet.handle = async (method, params) => {
    wallet.calls.push(method);
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return [CREATOR.address];
      case 'eth_chainId':
        return numberToHex(wallet.mode === 'wrong-chain' ? 1 : CHAIN_ID);
      case 'wallet_switchEthereumChain':
        if (wallet.mode === 'wrong-chain') throw Object.assign(new Error('User rejected the request.'), { code: 4001 });
        return null;
      case 'eth_signTypedData_v4': {
        if (wallet.mode === 'decline') throw Object.assign(new Error('User rejected the request.'), { code: 4001 });
        const data = JSON.parse(params[1]);
        assert(params[0] === CREATOR.address, 'the page asks the connected account to sign');
        const signer = wallet.mode === 'stranger' ? STRANGER : CREATOR;
        const types = { [data.primaryType]: data.types[data.primaryType] };
        return signer.signTypedData({ domain: data.domain, types, primaryType: data.primaryType,
          message: uints(types[data.primaryType], data.message) });
      }
      case 'eth_sendTransaction': {
        const [tx] = params;
        return client.sendTransaction({ to: tx.to, value: BigInt(tx.value), data: tx.data, chain: null });
      }
      default:
        return rpc(method, params);
    }
  };
  return wallet;
}

/** Stops `genmint dev` with Ctrl-C, as a user would, and removes its data dir. */
async function stopDev(dev) {
  const asked = Date.now();
  dev.child.kill('SIGINT');
  const gone = () => dev.child.exitCode !== null || dev.child.signalCode !== null;
  while (!gone() && Date.now() - asked < 15_000) await new Promise((r) => setTimeout(r, 100));
  const stopped = gone();
  log(`   genmint dev ${stopped ? 'stopped' : 'did not stop'} ${((Date.now() - asked) / 1000).toFixed(1)} s after Ctrl-C`);
  if (!stopped) dev.child.kill('SIGKILL');
  rmSync(dev.dataDir, { recursive: true, force: true });
  assert(stopped, 'genmint dev stops on Ctrl-C');
}

async function injectWallet(page, wallet) {
  await page.exposeFunction('__genmintTestWallet', async (method, params) => {
    try {
      return JSON.stringify({ result: await wallet.handle(method, JSON.parse(params)) });
    } catch (error) {
      return JSON.stringify({ error: { code: error.code ?? -32000, message: error.message } });
    }
  });
  await page.evaluateOnNewDocument(() => {
    window.ethereum = {
      async request({ method, params }) {
        const reply = JSON.parse(await window.__genmintTestWallet(method, JSON.stringify(params || [])));
        if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
        return reply.result;
      },
    };
  });
}

async function axe(page, name) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  log(`   axe on ${name}: ${result.length} violation(s), ${bad.length} serious or critical ${JSON.stringify(result)}`);
  assert(bad.length === 0, `no serious accessibility violations on ${name}: ${JSON.stringify(bad)}`);
}

const text = (page, selector) => page.$eval(selector, (el) => el.textContent.trim());
const visible = (page, selector) => page.$eval(selector, (el) => !el.hidden && el.offsetParent !== null);
async function refusal(page, id) {
  await page.waitForFunction((id) => { const el = document.getElementById(id); return el && !el.hidden && el.textContent; }, { timeout: 30_000 }, id);
  return text(page, `#${id}`);
}
async function submit(page) {
  await page.evaluate(() => document.querySelectorAll('.refusal').forEach((el) => { el.hidden = true; el.textContent = ''; }));
  await page.click('#submit');
}
async function setValue(page, id, value) {
  await page.$eval(`#${id}`, (el, value) => { el.value = value; el.dispatchEvent(new Event('change')); }, value);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  log(`starting genmint dev --min-fee-wei ${FEE} on ${URL}`);
  let dev = await startDev(['--min-fee-wei', FEE]);
  assert(dev.output().includes(`open ${URL}/ in a browser`), 'genmint dev prints the page URL');
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (error) => { throw new Error(`page error: ${error.message}`); });
    await page.setViewport({ width: 1280, height: 900 });
    const wallet = testWallet();
    await injectWallet(page, wallet);

    await check('the page loads from the node, small and self-contained', async () => {
      const outside = [];
      const sizes = [];
      const onRequest = (r) => { if (!r.url().startsWith(URL) && !r.url().startsWith('data:')) outside.push(r.url()); };
      const onResponse = (r) => sizes.push(r.buffer().then((b) => b.length, () => 0));
      page.on('request', onRequest);
      page.on('response', onResponse);
      await page.goto(`${URL}/`, { waitUntil: 'networkidle0' });
      await page.waitForFunction(() => document.querySelectorAll('#model option').length > 0);
      page.off('request', onRequest);
      page.off('response', onResponse);
      const bytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
      log(`   first load: ${bytes} bytes`);
      assert(bytes <= 250 * 1024, `first load ${bytes} bytes is within 250 KB`);
      assert(outside.length === 0, `nothing fetched from elsewhere: ${outside}`);
      assert((await page.$eval('#seed', (el) => el.value)).match(/^\d+$/), 'a random seed is shown');
      assert(await visible(page, '#dev-wallet'), 'genmint dev offers the development wallet');
      assert((await page.$eval('#fee', (el) => el.value)) === FEE.toString(), 'the fee starts at the node\'s price');
    });

    await check('connect the wallet; the deposit is shown', async () => {
      await page.click('#connect');
      await page.waitForFunction(() => document.getElementById('wallet-status').textContent.includes('Connected'));
      await page.waitForFunction(() => document.getElementById('deposit').textContent.includes('wei'));
      assert((await text(page, '#deposit')).includes('(0 wei)'), 'a new creator has no deposit');
    });

    const prompt = 'grinning face with smiling eyes';
    await page.type('#prompt', prompt);

    await check('a wallet that declines to sign: said next to the wallet, the form keeps its input', async () => {
      wallet.mode = 'decline';
      await submit(page);
      assert((await refusal(page, 'wallet-error')).includes('You declined the signature'), 'the decline is said');
      assert((await page.$eval('#prompt', (el) => el.value)) === prompt, 'the prompt is kept');
    });

    await check('a wallet on the wrong chain that will not switch', async () => {
      wallet.mode = 'wrong-chain';
      await submit(page);
      const said = await refusal(page, 'wallet-error');
      assert(said.includes('chain 1') && said.includes(`chain ${CHAIN_ID}`), said);
      assert(wallet.calls.includes('wallet_switchEthereumChain'), 'the page asked the wallet to switch');
    });

    await check('a signature by another key: the node refuses it (bad signature)', async () => {
      wallet.mode = 'stranger';
      await submit(page);
      const said = await refusal(page, 'wallet-error');
      assert(/signature|signer/i.test(said), said);
    });

    wallet.mode = 'ok';
    await check('steps out of the model\'s range: said next to steps', async () => {
      const steps = await page.$eval('#steps', (el) => el.value);
      await setValue(page, 'steps', '999');
      await submit(page);
      assert((await refusal(page, 'steps-error')).includes('999'), 'the refusal names the value');
      assert(await page.$eval('#steps', (el) => el.getAttribute('aria-invalid') === 'true'), 'the field is marked invalid');
      await setValue(page, 'steps', steps);
    });

    await check('a fee below the node\'s price: said next to the fee', async () => {
      await setValue(page, 'fee', '1');
      await submit(page);
      assert((await refusal(page, 'fee-error')).includes(`at least ${FEE} wei`), 'the refusal names the price');
    });

    await check('a fee above the deposit: said next to the fee, with a deposit button', async () => {
      await setValue(page, 'fee', FEE.toString());
      await submit(page);
      assert((await refusal(page, 'fee-error')).includes('deposit'), 'the refusal says to deposit');
      await page.waitForFunction(() => !document.getElementById('deposit-button').hidden);
      await page.screenshot({ path: join(SHOTS, 'generate-refusal-desktop.png') });
    });

    await check('deposit from the wallet (a real transaction on anvil)', async () => {
      await page.click('#deposit-button');
      await page.waitForFunction((fee) => document.getElementById('deposit').textContent.includes(`(${fee} wei)`), { timeout: 60_000 }, FEE.toString());
      assert(wallet.calls.includes('eth_sendTransaction'), 'the wallet sent the deposit');
      assert(await page.$eval('#deposit-button', (el) => el.hidden), 'no deposit is needed any more');
    });

    let jobId;
    let minted;
    await check('sign and generate: the job\'s live state to a minted token', async () => {
      const seed = await page.$eval('#seed', (el) => el.value);
      await submit(page);
      await page.waitForFunction(() => !document.getElementById('job').hidden, { timeout: 30_000 });
      const seen = new Set();
      let previewed = false;
      const deadline = Date.now() + 180_000;
      while (!(await page.$eval('#job-token', (el) => !el.hidden))) {
        seen.add(await page.$eval('#job', (el) => el.dataset.state));
        previewed ||= (await page.$eval('#job-image', (el) => el.src)).startsWith('data:image/png;base64,');
        const failed = await page.$eval('#job-error', (el) => !el.hidden && el.textContent);
        assert(!failed, `the job failed: ${failed}`);
        assert(Date.now() < deadline, `minted within 180 s (states seen: ${[...seen]})`);
        await new Promise((r) => setTimeout(r, 100));
      }
      log(`   states seen: ${[...seen].join(', ')}`);
      assert(previewed, 'the picture was previewed as it formed');
      assert((await text(page, '#job-route')).includes('this node'), 'the page says where it runs');
      await page.waitForFunction(() => { const img = document.getElementById('job-image'); return !img.hidden && img.complete && img.naturalWidth > 0; }, { timeout: 10_000 });
      assert((await page.$eval('#seed', (el) => el.value)) === seed, 'the seed stays shown for reuse');
      minted = Date.now();
      jobId = await page.$eval('#job-token a', (el) => el.getAttribute('href').split('/').pop());
      await axe(page, 'the generate page');
      await page.screenshot({ path: join(SHOTS, 'generate-desktop.png'), fullPage: true });
    });

    await check('genmint verify accepts the token', async () => {
      const args = ['verify', jobId, '--rpc-url', RPC, '--node', URL, '--ipfs-api', `http://127.0.0.1:${PORTS.ipfs}`];
      const { stdout } = await promisify(execFile)(BIN, args).catch((e) => {
        throw new Error(`genmint verify refused the token:\n${e.stdout}\n${e.stderr}`);
      });
      log(`   genmint verify: ${stdout.trim().split('\n').slice(-1)[0]}`);
    });

    await check('the token page: picture, settings, every check by name, OpenGraph, generate again', async () => {
      await page.goto(`${URL}/tokens/${jobId}`, { waitUntil: 'networkidle0' });
      const og = await page.$$eval('meta[property^="og:"]', (els) => Object.fromEntries(els.map((e) => [e.getAttribute('property'), e.content])));
      assert(og['og:image'] === `${URL}/v1/tokens/${jobId}/image` && og['og:url'] === `${URL}/tokens/${jobId}`, JSON.stringify(og));
      const provenance = await (await fetch(`${URL}/v1/tokens/${jobId}/provenance`)).json();
      const rows = await page.$$eval('tr[data-check]', (els) => els.map((e) => [e.dataset.check, e.querySelector('td').className]));
      assert(JSON.stringify(rows.map((r) => r[0])) === JSON.stringify(provenance.checks.map((c) => c.name)), 'the same checks as the API, by name');
      assert(rows.every((r) => r[1] === 'ok'), `every check passed: ${JSON.stringify(rows)}`);
      await page.waitForFunction(() => { const img = document.querySelector('figure img'); return img.complete && img.naturalWidth > 0; }, { timeout: 10_000 });
      const metadata = await (await fetch(`${URL}/v1/jobs/${jobId}`)).json();
      assert(metadata.state === 'minted', 'the job is minted');
      await axe(page, 'the token page');
      await page.screenshot({ path: join(SHOTS, 'token-desktop.png'), fullPage: true });
      await page.click('a[href^="/?model="]');
      await page.waitForFunction(() => document.querySelectorAll('#model option').length > 0);
      assert((await page.$eval('#prompt', (el) => el.value)) === prompt, 'generate again fills the prompt');
    });

    await check('the gallery: recent, mine, the model\'s; and GET /v1/tokens', async () => {
      let listed;
      for (let i = 0; i < 60 && !listed; i += 1) {
        const page1 = await (await fetch(`${URL}/v1/tokens?creator=${CREATOR.address}`)).json();
        listed = page1.tokens.find((t) => t.id === jobId);
        if (!listed) await new Promise((r) => setTimeout(r, 500));
      }
      assert(listed, 'the indexer lists the token for its creator');
      log(`   listed by the gallery ${((Date.now() - minted) / 1000).toFixed(1)} s after the mint`);
      assert(listed.prompt === prompt && listed.model_hash, JSON.stringify(listed));
      for (const query of ['', `?creator=${CREATOR.address.toLowerCase()}`, `?model=${listed.model_hash}`]) {
        await page.goto(`${URL}/gallery${query}`, { waitUntil: 'networkidle0' });
        assert(await page.$(`a[href="/tokens/${jobId}"]`), `the gallery${query} links the token`);
      }
      await page.goto(`${URL}/gallery`, { waitUntil: 'networkidle0' });
      const mine = await page.$eval('#mine', (el) => !el.hidden && el.getAttribute('href'));
      assert(mine === `/gallery?creator=${CREATOR.address.toLowerCase()}`, `"Mine" is the connected wallet's: ${mine}`);
      const other = await (await fetch(`${URL}/v1/tokens?creator=${STRANGER.address}`)).json();
      assert(other.tokens.length === 0, 'another creator has no tokens');
      const bad = await fetch(`${URL}/v1/tokens?cursor=next`);
      assert(bad.status === 400, 'an unreadable cursor is refused');
      await axe(page, 'the gallery');
      await page.screenshot({ path: join(SHOTS, 'gallery-desktop.png'), fullPage: true });
    });

    await check('phone width: the generate and token pages', async () => {
      const phone = await browser.newPage();
      await phone.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
      await phone.goto(`${URL}/tokens/${jobId}`, { waitUntil: 'networkidle0' });
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `no sideways scrolling on a phone (${overflow} px)`);
      await phone.screenshot({ path: join(SHOTS, 'token-phone.png'), fullPage: true });
      await phone.goto(`${URL}/`, { waitUntil: 'networkidle0' });
      const formOverflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(formOverflow <= 0, `the form fits a phone (${formOverflow} px)`);
      await phone.screenshot({ path: join(SHOTS, 'generate-phone.png'), fullPage: true });
      await phone.close();
    });

    await stopDev(dev);
    log(`starting genmint dev on ${URL}, as the README says (fees 0)`);
    dev = await startDev();
    await check('no extension: the development wallet mints, by keyboard; then a job is cancelled', async () => {
      const context = await browser.createBrowserContext();
      const bare = await context.newPage();
      await bare.setViewport({ width: 960, height: 900 });
      await bare.goto(`${URL}/`, { waitUntil: 'networkidle0' });
      await bare.waitForFunction(() => document.querySelectorAll('#model option').length > 0);
      assert(await bare.$eval('#connect', (el) => el.disabled), 'no extension: nothing to connect');
      await bare.focus('#use-dev-wallet');
      await bare.keyboard.press('Enter');
      await bare.waitForFunction(() => document.getElementById('wallet-status').textContent.includes('development wallet'));
      await bare.focus('#prompt');
      await bare.keyboard.type('a red apple');
      await bare.focus('#submit');
      await bare.keyboard.press('Enter');
      await bare.waitForFunction(() => !document.getElementById('job-token').hidden, { timeout: 180_000 });
      await bare.screenshot({ path: join(SHOTS, 'dev-wallet-desktop.png'), fullPage: true });

      log('   cancel a job while it generates');
      await setValue(bare, 'steps', await bare.$eval('#steps', (el) => el.max));
      await setValue(bare, 'seed', '7');
      await bare.click('#submit');
      await bare.waitForFunction(() => document.getElementById('job').dataset.state === 'generating', { timeout: 60_000 });
      assert(await visible(bare, '#cancel'), 'a generating job can be cancelled');
      await bare.click('#cancel');
      await bare.waitForFunction(() => document.getElementById('job').dataset.state === 'cancelled', { timeout: 30_000 });
      assert(!(await visible(bare, '#cancel')), 'a cancelled job offers no cancel');
      await context.close();
    });
  } finally {
    await browser.close();
    await stopDev(dev);
  }
  log(`passed: ${step} checks in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
}

main().catch((error) => {
  console.error(`browser-test: ${error.stack || error}`);
  process.exit(1);
});
