// The one zod every schema in deckhand is built with: zod/mini, the
// tree-shakable form (functions instead of methods: z.optional(s),
// s.check(z.minLength(1))). Compared with zod's classic API it keeps about
// 3 MB less in the agent's memory for the same schemas (docs/performance.md).
// zod/mini loads no locale by itself; English messages are set once here, so
// every schema built from this module reports readable issues.
//
// Use it as `import * as z from '.../validation.js'`: only static member
// access keeps the bundle tree-shaken (re-exporting the namespace as a value
// would pull all of zod and every locale into the bundle).
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export * from 'zod/mini';
