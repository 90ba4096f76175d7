// The node's HTTP API as the page uses it: JSON in and out, and each refusal turned into the form
// field it is about, so the page can say it next to its cause.

/** A refusal of the API: its code, its sentence, and the field it concerns (or `submit`). */
export class Refusal extends Error {
  constructor(code, message, field) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

const FIELD_OF = {
  bad_signature: 'wallet', fee_too_low: 'fee', insufficient_funds: 'fee', invalid_prompt: 'prompt',
  prompt_too_long: 'prompt', negative_prompt_unsupported: 'negative', unknown_model: 'model', expired: 'submit',
  busy: 'submit',
};
const SETTINGS = ['negative', 'width', 'height', 'steps', 'guidance', 'scheduler', 'seed'];

/** The field a refusal is about; an out-of-range refusal names its setting in its sentence. */
export function fieldOf(code, message) {
  if (code === 'out_of_range') {
    const named = SETTINGS.find((f) => new RegExp(`\\b${f === 'negative' ? 'negative prompt' : f}\\b`, 'i').test(message));
    return named || 'submit';
  }
  return FIELD_OF[code] || 'submit';
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Refusal('unreachable', 'The node cannot be reached; check that it is running and reload the page.', 'submit');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    const message = error.message || `The node answered ${response.status}.`;
    throw new Refusal(error.code || 'error', message, fieldOf(error.code, message));
  }
  return body;
}

export const postJson = (path, value) =>
  api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
