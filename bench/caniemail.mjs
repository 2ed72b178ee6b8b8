// Which HTML and CSS features of a rendered email the caniemail data set says Gmail, Outlook,
// Apple Mail and Yahoo support fully. Usage (once: `npm install --prefix bench caniemail`):
//   node bench/caniemail.mjs output/email/2025-02.html
// A feature counts as "used" when caniemail flags it for at least one of its 32 clients (features
// that every client supports are never flagged, so the share below is a lower bound).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { caniemail } = await import(require.resolve('caniemail', { paths: [process.cwd(), new URL('.', import.meta.url).pathname] }));
const FAMILIES = ['gmail.*', 'outlook.*', 'apple-mail.*', 'yahoo.*'];
const CLIENTS = ['gmail.desktop-webmail', 'gmail.ios', 'gmail.android', 'gmail.mobile-webmail', 'outlook.windows',
  'outlook.windows-mail', 'outlook.macos', 'outlook.ios', 'outlook.android', 'apple-mail.macos', 'apple-mail.ios',
  'yahoo.desktop-webmail', 'yahoo.ios', 'yahoo.android'];

for (const file of process.argv.slice(2)) {
  const html = readFileSync(file, 'utf8');
  const titles = (result) => {
    const found = new Map();  // title -> set of "client: support"
    for (const kind of ['errors', 'warnings']) {
      const byClient = result.issues[kind];
      const entries = byClient instanceof Map ? byClient.entries() : Object.entries(byClient || {});
      for (const [client, issues] of entries) {
        for (const issue of issues) {
          if (!found.has(issue.title)) found.set(issue.title, new Set());
          found.get(issue.title).add(`${client}: ${issue.support || kind}`);
        }
      }
    }
    return found;
  };
  const used = titles(caniemail({ html, clients: ['*'] }));
  const gaps = titles(caniemail({ html, clients: FAMILIES }));
  const full = [...used.keys()].filter((t) => !gaps.has(t));
  console.log(`${file}: ${used.size} features flagged by caniemail for some client; ` +
    `${full.length} (${(100 * full.length / Math.max(used.size, 1)).toFixed(0)}%) fully supported in Gmail, Outlook, Apple Mail and Yahoo`);
  let none = 0, partial = 0;
  for (const where of gaps.values()) for (const w of where) (w.endsWith(': none') || w.endsWith(': errors')) ? none++ : partial++;
  const pairs = used.size * CLIENTS.length;
  console.log(`  feature x client pairs (${used.size} x ${CLIENTS.length} clients): ` +
    `${(100 * (pairs - none - partial) / pairs).toFixed(0)}% full, ${(100 * partial / pairs).toFixed(0)}% partial, ` +
    `${(100 * none / pairs).toFixed(0)}% none`);
  for (const [title, where] of [...gaps.entries()].sort()) {
    const clients = [...where].map((w) => w.split(':')[0]);
    const families = [...new Set(clients.map((c) => c.split('.')[0]))];
    const worst = [...where].filter((w) => w.endsWith(': none')).map((w) => w.split(':')[0]);
    console.log(`  not everywhere: ${title} (${families.join(', ')}; none in: ${worst.join(', ') || '-'})`);
  }
}
