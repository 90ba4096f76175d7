// The generate page: the form (model picker fed by GET /v1/models, settings within the model's
// limits, a random seed shown and reusable, the fee), signing in the creator's wallet, the deposit,
// and the job's live state from its event stream, with cancel. A refusal is said next to its
// field, and the form keeps what was typed.
import { formatEther } from 'viem';
import { api, postJson, Refusal } from './api.js';
import { WalletError, connect, deposit, devWallet, ensureChain, signCancel, signRequest } from './wallet.js';

const $ = (id) => document.getElementById(id);
const FIELDS = ['wallet', 'prompt', 'negative', 'model', 'seed', 'width', 'height', 'steps', 'guidance', 'scheduler', 'fee', 'submit', 'deposit', 'job'];
const TERMINAL = new Set(['minted', 'failed', 'cancelled', 'expired']);
const CANCELLABLE = new Set(['received', 'queued', 'generating', 'generated']);
const STATE_TEXT = {
  received: 'Received by the node.', queued: 'Waiting for the generator.', generating: 'Generating…',
  generated: 'Generated; pinning the picture and its metadata to IPFS.', pinned: 'Pinned; minting the token.',
  minting: 'Minting: waiting for the transaction.', confirming: 'Mined; waiting for confirmations.',
  minted: 'Minted.', failed: 'Failed.',
  cancelled: 'Cancelled.', expired: 'Expired: the deadline passed before it could be minted.',
};

function say(field, message) {
  const el = $(`${field}-error`);
  if (!el) return;
  // The node's sentences start in lower case; the page shows them on their own.
  el.textContent = message ? message[0].toUpperCase() + message.slice(1) : '';
  el.hidden = !message;
  const input = $(field);
  if (input && input.tagName !== 'BUTTON') input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

function clearAll() {
  for (const field of FIELDS) say(field, '');
}

function randomSeed() {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return ((BigInt(words[0]) << 32n) | BigInt(words[1])).toString();
}

export async function startGenerate(config, remember) {
  const state = { provider: null, address: null, models: [], eip712: null, events: null };
  const form = $('generate');

  // Settings from a link ("generate again with these settings") fill the form.
  const given = new URLSearchParams(location.search);
  for (const name of ['prompt', 'negative', 'seed', 'width', 'height', 'steps', 'guidance']) {
    if (given.has(name)) $(name).value = given.get(name);
  }
  if (!$('seed').value) $('seed').value = randomSeed();
  $('new-seed').addEventListener('click', () => { $('seed').value = randomSeed(); });

  try {
    [state.eip712, { models: state.models }] = await Promise.all([api('/v1/eip712'), api('/v1/models')]);
  } catch (error) {
    say('submit', error.message);
    return;
  }
  const picker = $('model');
  for (const model of state.models) {
    const option = new Option(`${model.name}${model.local ? '' : ' (on a peer)'}`, model.hash);
    picker.add(option);
  }
  if (given.has('model')) picker.value = given.get('model').toLowerCase();
  const model = () => state.models.find((m) => m.hash === picker.value) || state.models[0];

  function applyLimits(keepValues) {
    const m = model();
    if (!m) return;
    const l = m.limits || {};
    const set = (id, min, max, value, step) => {
      const el = $(id);
      if (min !== undefined) el.min = min;
      if (max !== undefined) el.max = max;
      if (step) el.step = step;
      if (!keepValues && value !== undefined) el.value = value;
    };
    set('width', l.min_width, l.max_width, l.default_width, l.size_multiple);
    set('height', l.min_height, l.max_height, l.default_height, l.size_multiple);
    set('steps', 1, l.max_steps, l.default_steps);
    set('guidance', 0, l.max_guidance, l.default_guidance, 0.1);
    const scheduler = $('scheduler');
    const current = given.get('scheduler') || l.default_scheduler || scheduler.value;
    scheduler.replaceChildren(...(l.schedulers || ['ddim']).map((s) => new Option(s, s)));
    if ((l.schedulers || ['ddim']).includes(current)) scheduler.value = current;
    $('negative').disabled = l.negative_prompt === false;
    const price = m.local ? m.price_wei : (m.providers[0] || {}).price_wei;
    if (!keepValues) $('fee').value = price || config.minFeeWei || '0';
    const providers = m.local ? 'this node' : `${m.providers.length} peer node(s)`;
    $('model-info').textContent =
      `Served by ${providers}; price ${price || '0'} wei. Up to ${l.max_width}×${l.max_height} px and ${l.max_steps} steps.`;
    refreshDeposit();
  }
  picker.addEventListener('change', () => applyLimits(false));
  applyLimits(given.has('width'));

  async function refreshDeposit() {
    if (!state.address) return;
    try {
      const { deposit_wei: wei } = await api(`/v1/deposits/${state.address}`);
      $('deposit').textContent = `${formatEther(BigInt(wei))} ETH (${wei} wei)`;
      const need = BigInt($('fee').value || '0') - BigInt(wei);
      $('deposit-button').hidden = need <= 0n;
      $('deposit-button').textContent = `Deposit ${need > 0n ? need : 0n} wei`;
      $('deposit-button').dataset.wei = need > 0n ? need.toString() : '0';
    } catch (error) {
      say('deposit', error.message);
    }
  }
  $('fee').addEventListener('change', refreshDeposit);

  async function useProvider(provider, label) {
    say('wallet', '');
    try {
      state.address = await connect(provider);
      state.provider = provider;
      remember(state.address);
      $('wallet-status').textContent = `Connected: ${state.address} (${label}).`;
      $('mine').href = `/gallery?creator=${state.address.toLowerCase()}`;
      $('mine').hidden = false;
      refreshDeposit();
    } catch (error) {
      say('wallet', error.message);
    }
  }
  if (window.ethereum) {
    $('connect').addEventListener('click', () => useProvider(window.ethereum, 'your wallet'));
  } else {
    $('connect').disabled = true;
    $('wallet-status').textContent = config.devWallet
      ? 'No wallet extension found: use the development wallet below, or install a wallet.'
      : 'No wallet found: install a browser wallet (one that supports EIP-1193) to sign requests.';
  }
  if (config.devWallet) {
    $('dev-wallet').hidden = false;
    $('use-dev-wallet').addEventListener('click', () => useProvider(devWallet(config.chainId), 'development wallet'));
  }

  $('deposit-button').addEventListener('click', async () => {
    say('deposit', '');
    try {
      await ensureChain(state.provider, config.chainId, config.walletRpcUrl);
      await deposit(state.provider, state.address, config.contract, BigInt($('deposit-button').dataset.wei));
      $('deposit').textContent = 'Deposit sent; waiting for the chain…';
      for (let i = 0; i < 30; i += 1) {
        await new Promise((r) => setTimeout(r, 1000));
        const { deposit_wei: wei } = await api(`/v1/deposits/${state.address}`);
        if (BigInt(wei) >= BigInt($('fee').value || '0')) break;
      }
      say('fee', '');
      await refreshDeposit();
    } catch (error) {
      say('deposit', error.message);
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearAll();
    if (!state.provider) {
      say('wallet', 'Connect a wallet first: it signs the request, so the token is yours.');
      return;
    }
    if (!$('prompt').value.trim()) {
      say('prompt', 'Type what to generate.');
      return;
    }
    const m = model();
    const now = Math.floor(Date.now() / 1000);
    const request = {
      creator: state.address, modelHash: m.hash, prompt: $('prompt').value, negativePrompt: $('negative').disabled ? '' : $('negative').value,
      seed: $('seed').value.trim(), width: $('width').value, height: $('height').value, steps: $('steps').value,
      guidance: String(Math.round(Number($('guidance').value) * 100)), scheduler: $('scheduler').value,
      fee: $('fee').value.trim() || '0', nonce: String(Date.now()), deadline: String(now + 3600),
    };
    for (const name of ['seed', 'width', 'height', 'steps', 'fee']) {
      if (!/^\d+$/.test(request[name])) {
        say(name, `${$(name).labels[0].textContent} must be a whole number.`);
        return;
      }
    }
    $('submit').disabled = true;
    try {
      await ensureChain(state.provider, config.chainId, config.walletRpcUrl);
      const signature = await signRequest(state.provider, state.address, state.eip712, request);
      const job = await postJson('/v1/jobs', { request, signature });
      follow(job);
    } catch (error) {
      if (error instanceof Refusal) {
        say(error.field, error.message);
        if (error.code === 'insufficient_funds') refreshDeposit();
      } else if (error instanceof WalletError) {
        say('wallet', error.message);
      } else {
        say('submit', `Something went wrong: ${error.message}`);
      }
    } finally {
      $('submit').disabled = false;
    }
  });

  function follow(job) {
    if (state.events) state.events.close();
    $('job').hidden = false;
    $('job-image').hidden = true;
    $('job-token').hidden = true;
    $('job-progress').value = 0;
    say('job', '');
    show(job);
    const events = new EventSource(`/v1/jobs/${job.id}/events`);
    state.events = events;
    for (const name of Object.keys(STATE_TEXT)) {
      events.addEventListener(name, (e) => show(JSON.parse(e.data)));
    }
    events.addEventListener('progress', (e) => {
      const { step, total, preview } = JSON.parse(e.data);
      $('job-progress').max = total;
      $('job-progress').value = step;
      $('job-state').textContent = `Generating: step ${step} of ${total}.`;
      if (preview) {
        // The picture as it forms (models that can show it cheaply), until the pinned one.
        $('job-image').src = preview;
        $('job-image').alt = `The picture forming, step ${step} of ${total}`;
        $('job-image').hidden = false;
      }
    });
    events.addEventListener('loading', () => { $('job-state').textContent = 'Loading the model…'; });
    events.addEventListener('notice', (e) => { $('job-notice').textContent = JSON.parse(e.data).message; });
    events.onerror = () => { if (events.readyState === EventSource.CLOSED) state.events = null; };
  }

  function show(job) {
    $('job').dataset.state = job.state;
    const place = job.queue_position === null || job.queue_position === undefined ? ''
      : job.queue_position === 0 ? ' You are next.' : ` ${job.queue_position} job(s) ahead of yours.`;
    const depth = job.state === 'confirming' && job.confirmations_needed
      ? ` ${job.confirmations ?? 0} of ${job.confirmations_needed} blocks.` : '';
    $('job-state').textContent = STATE_TEXT[job.state] + depth + place;
    $('job-route').textContent = job.route === 'forwarded'
      ? `Forwarded to ${job.executor ? `peer ${job.executor}` : 'a peer'} that serves the model.`
      : `Running on this node${job.origin ? ` for peer ${job.origin}` : ''}.`;
    if (job.image_cid) {
      $('job-image').src = `/v1/jobs/${job.id}/image`;
      $('job-image').alt = `The generated picture for: ${$('prompt').value}`;
      $('job-image').hidden = false;
    }
    if (job.state === 'minted') {
      $('job-progress').value = $('job-progress').max;
      $('job-token').replaceChildren('Your token: ', Object.assign(document.createElement('a'),
        { href: `/tokens/${job.id}`, textContent: `token ${job.token_id}` }), ` (transaction ${job.tx_hash}).`);
      $('job-token').hidden = false;
    }
    if (job.error) say('job', job.error);
    $('cancel').hidden = !CANCELLABLE.has(job.state);
    if (TERMINAL.has(job.state) && state.events) {
      state.events.close();
      state.events = null;
    }
    if (job.state === 'queued' || job.state === 'received') {
      setTimeout(() => { if ($('job').dataset.state === job.state) api(`/v1/jobs/${job.id}`).then(show).catch(() => {}); }, 2000);
    }
    // Only the creator may cancel: the wallet that signed the request signs the cancel.
    $('cancel').onclick = async () => {
      try {
        if (!state.provider) throw new WalletError('Connect the wallet that signed the request: only it can cancel the job.');
        const cancel = await signCancel(state.provider, state.address, state.eip712, job.id);
        show(await api(`/v1/jobs/${job.id}`, {
          method: 'DELETE', headers: { 'content-type': 'application/json' }, body: JSON.stringify(cancel),
        }));
      } catch (error) {
        say('job', error.message);
      }
    };
  }
}
