// Replaced at build time by the bundler; tsx (tests, dev) reads package.json.
declare const __DECKHAND_VERSION__: string | undefined;

export const VERSION: string =
  typeof __DECKHAND_VERSION__ === 'string' ? __DECKHAND_VERSION__ : (process.env.npm_package_version ?? '0.0.0-dev');
