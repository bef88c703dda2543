// deckhand: the remote CLI. Bundled by `npm run build` into dist/deckhand.js,
// one self-contained file that any Node 20+ runs.
import { runCli } from './cli.js';
import { processIo } from './io.js';

// Set the code and let the event loop drain rather than process.exit():
// on macOS a pipe to stdout is asynchronous, and exit() would cut the output.
process.exitCode = await runCli(process.argv.slice(2), processIo());
