// The creator's wallet through EIP-1193: connect, switch to (or add) the node's chain, sign the
// request as EIP-712 typed data, send a deposit. The development wallet (genmint dev only) is an
// EIP-1193 provider too, whose key is made and kept in this browser.
import { numberToHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/** A wallet failure in a sentence the page shows. */
export class WalletError extends Error {}

const USER_REJECTED = 4001;
const UNKNOWN_CHAIN = 4902;
const DEV_KEY = 'genmint.devWalletKey';

function declined(error, what) {
  if (error && error.code === USER_REJECTED) {
    return new WalletError(`You declined ${what} in your wallet; nothing was sent.`);
  }
  return new WalletError(`Your wallet could not ${what.replace(/^the /, 'make the ')}: ${error && error.message ? error.message : error}.`);
}

/** Connects `provider` and returns the creator's address. */
export async function connect(provider) {
  let accounts;
  try {
    accounts = await provider.request({ method: 'eth_requestAccounts' });
  } catch (error) {
    throw declined(error, 'the connection');
  }
  if (!accounts || !accounts.length) throw new WalletError('Your wallet shared no account; unlock it and connect again.');
  return accounts[0];
}

/** Makes sure the wallet is on the node's chain, asking it to switch or to add the chain. */
export async function ensureChain(provider, chainId, rpcUrl) {
  const want = numberToHex(chainId);
  const current = await provider.request({ method: 'eth_chainId' });
  if (Number(current) === chainId) return;
  const wrong = new WalletError(
    `Your wallet is on chain ${Number(current)}, but this node mints on chain ${chainId}. Switch your wallet to chain ${chainId} and try again.`);
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: want }] });
  } catch (error) {
    if (error && error.code === UNKNOWN_CHAIN && rpcUrl) {
      try {
        await provider.request({
          method: 'wallet_addEthereumChain',
          params: [{ chainId: want, chainName: `genmint chain ${chainId}`, rpcUrls: [rpcUrl],
            nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 } }],
        });
      } catch {
        throw wrong;
      }
    } else {
      throw wrong;
    }
  }
  if (Number(await provider.request({ method: 'eth_chainId' })) !== chainId) throw wrong;
}

/** Typed data of one of the node's types (`GenerationRequest`, `CancelJob`), in the
 * `eth_signTypedData_v4` shape the node describes in `GET /v1/eip712`. */
export function typedData(eip712, primaryType, message) {
  const types = { EIP712Domain: eip712.types.EIP712Domain, [primaryType]: eip712.types[primaryType] };
  return { types, domain: eip712.domain, primaryType, message };
}

async function signTyped(provider, address, eip712, primaryType, message, what) {
  try {
    return await provider.request({ method: 'eth_signTypedData_v4', params: [address, JSON.stringify(typedData(eip712, primaryType, message))] });
  } catch (error) {
    throw declined(error, what);
  }
}

/** The creator's signature over `request`. */
export const signRequest = (provider, address, eip712, request) =>
  signTyped(provider, address, eip712, 'GenerationRequest', request, 'the signature');

/** The creator's signed cancel of job `jobId`, valid for five minutes: the body of `DELETE /v1/jobs/{id}`. */
export async function signCancel(provider, address, eip712, jobId) {
  const deadline = String(Math.floor(Date.now() / 1000) + 300);
  const signature = await signTyped(provider, address, eip712, 'CancelJob', { jobId, deadline }, 'the cancel');
  return { deadline, signature };
}

/** Sends `wei` to the contract's `deposit()` from `address`, and returns the transaction hash. */
export async function deposit(provider, address, contract, wei) {
  try {
    return await provider.request({
      method: 'eth_sendTransaction',
      params: [{ from: address, to: contract, value: numberToHex(wei), data: '0xd0e30db0' }],
    });
  } catch (error) {
    throw declined(error, 'the deposit');
  }
}

/** Integers as viem signs them: the request's decimal strings as bigints. */
function forSigning(types, message) {
  const out = {};
  for (const { name, type } of types) out[name] = /^u?int/.test(type) ? BigInt(message[name]) : message[name];
  return out;
}

/** The development wallet: an EIP-1193 provider over a key kept in this browser's storage. */
export function devWallet(chainId) {
  let key = localStorage.getItem(DEV_KEY);
  if (!key) {
    key = generatePrivateKey();
    localStorage.setItem(DEV_KEY, key);
  }
  const account = privateKeyToAccount(key);
  return {
    isGenmintDevWallet: true,
    async request({ method, params }) {
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return [account.address];
        case 'eth_chainId':
          return numberToHex(chainId);
        case 'wallet_switchEthereumChain':
          return null;
        case 'eth_signTypedData_v4': {
          const data = JSON.parse(params[1]);
          const types = { [data.primaryType]: data.types[data.primaryType] };
          return account.signTypedData({ domain: data.domain, types, primaryType: data.primaryType,
            message: forSigning(types[data.primaryType], data.message) });
        }
        case 'eth_sendTransaction':
          throw Object.assign(new Error('the development wallet holds no ETH, so it cannot deposit; use a fee of 0 or a funded wallet'), { code: 4200 });
        default:
          throw Object.assign(new Error(`the development wallet does not support ${method}`), { code: 4200 });
      }
    },
  };
}
