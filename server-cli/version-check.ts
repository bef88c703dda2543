// The CLI and the agent are released together; a CLI talking to an agent of
// another release may ask for methods or read fields the other side does not
// have. The agent names its version in the WebSocket upgrade's answer
// (X-Deckhand-Version); the CLI warns, once per host, when the difference
// can matter: another major version, or before 1.0 another minor one. A
// patch difference, or an agent too old to send the header, says nothing.

const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;

/** Why CLI_VERSION and AGENT_VERSION may not work together, or undefined when they will. */
export function versionMismatch(cliVersion: string, agentVersion: string | undefined): string | undefined {
  if (agentVersion === undefined) return undefined;
  const c = SEMVER.exec(cliVersion);
  const a = SEMVER.exec(agentVersion);
  if (!c || !a) return undefined;
  const [cMajor, cMinor] = [Number(c[1]), Number(c[2])];
  const [aMajor, aMinor] = [Number(a[1]), Number(a[2])];
  const older = cMajor < aMajor || (cMajor === aMajor && cMinor < aMinor) ? 'this CLI' : 'the agent';
  if (cMajor !== aMajor) return `deckhand ${cliVersion} and agent ${agentVersion} are different major versions: commands and answers may not match; upgrade ${older}`;
  if (cMajor === 0 && cMinor !== aMinor) return `deckhand ${cliVersion} and agent ${agentVersion} differ in their minor version (before 1.0 that can change the API): upgrade ${older}`;
  return undefined;
}

type Sink = (message: string) => void;
let sink: Sink = () => {};
const warned = new Set<string>();

/** Where warnings go (the CLI's stderr); set once by runCli. */
export function setVersionWarningSink(s: Sink): void {
  sink = s;
  warned.clear();
}

/** Warns about HOST's agent once per process, if its version matters. */
export function checkAgentVersion(host: string, cliVersion: string, agentVersion: string | undefined): void {
  const why = versionMismatch(cliVersion, agentVersion);
  if (!why || warned.has(host)) return;
  warned.add(host);
  sink(`warning: ${host}: ${why}\n`);
}
