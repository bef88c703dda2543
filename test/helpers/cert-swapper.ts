// Swaps certificate versions in a loop until killed: the child of the
// killed-mid-swap test. argv: dataDir pairs.json filesDir linksDir
// Each round installs the next pair of pairs.json (after the one current, so
// the order is the same across kills) and copies it to both directories.
import { readFileSync } from 'node:fs';
import { CertStore, type NewPair } from '../../agent/duties/certs/files.js';

const [dataDir, pairsFile, filesDir, linksDir] = process.argv.slice(2) as [string, string, string, string];
const { domains, pairs } = JSON.parse(readFileSync(pairsFile, 'utf8')) as { domains: string[]; pairs: (NewPair & { serial: string })[] };

const store = CertStore.open(dataDir, 'main');
const serial = store.readCurrent()?.serial;
let i = pairs.findIndex((p) => p.serial === serial) + 1;
process.stdout.write('ready\n');
for (;;) {
  store.install(pairs[i % pairs.length]!, { domains, keyType: 'ecdsa-p256' });
  store.copyTo(filesDir);
  store.copyTo(linksDir, { layout: 'symlinks' });
  i++;
}
