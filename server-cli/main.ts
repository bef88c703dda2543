// deckhand: the remote CLI. Commands arrive with the API (see docs/).
import { Command } from 'commander';
import { VERSION } from '../agent/version.js';

const program = new Command('deckhand').description('See and deploy deckhand servers from a laptop or CI.').version(VERSION, '-V, --version');
program.parse(process.argv);
