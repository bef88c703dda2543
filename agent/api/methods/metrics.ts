// metrics.*: the metrics duty's series as JSON-RPC methods.
import type { MetricsDuty } from '../../duties/metrics/duty.js';
import { ERROR, parseTimeParam } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';

export function metricsMethods(metrics: MetricsDuty): MethodTable {
  return {
    'metrics.series': () => ({ series: metrics.seriesNames() }),
    'metrics.query': ({ series, from, to, step }) => {
      const now = Date.now();
      const fromMs = from === undefined ? now - 3_600_000 : parseTimeParam(from, now);
      const toMs = to === undefined ? now : parseTimeParam(to, now);
      if (fromMs === null || toMs === null) throw new RpcFailure(ERROR.invalidParams, 'invalid params: from/to: expected an ISO time or a duration back from now like 24h');
      if (fromMs > toMs) throw new RpcFailure(ERROR.invalidParams, 'invalid params: from is after to');
      const result = metrics.query(series, fromMs, toMs, step, now);
      return { series, step: result.step, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), points: result.points };
    },
  };
}
