// The page's script: the generate page's form and live job, and the gallery's "mine" link for the
// connected wallet. The token and gallery pages work without it.
import { startGenerate } from './generate.js';

const ADDRESS = 'genmint.address';

function showMine() {
  const mine = document.getElementById('mine');
  const address = localStorage.getItem(ADDRESS);
  if (mine && address) {
    mine.href = `/gallery?creator=${address.toLowerCase()}`;
    mine.hidden = false;
  }
}

const page = document.body.dataset.page;
if (page === 'generate') {
  const config = JSON.parse(document.getElementById('genmint-config').textContent);
  startGenerate(config, (address) => localStorage.setItem(ADDRESS, address));
} else if (page === 'gallery') {
  showMine();
}
