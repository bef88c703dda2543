#!/usr/bin/env node
// Thin launcher: the bundled build lives in dist/ (npm run build).
import '../dist/deckhand-agent.js';
