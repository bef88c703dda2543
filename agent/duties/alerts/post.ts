// One JSON POST with a hard timeout. node:http rather than fetch: it costs
// no extra memory at idle, and a webhook is one small request.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface PostResult {
  ok: boolean;
  status?: number;
  error?: string;
}

export function postJson(url: string, body: unknown, timeoutMs: number, userAgent: string, signal?: AbortSignal): Promise<PostResult> {
  const target = new URL(url);
  const payload = Buffer.from(JSON.stringify(body));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = send(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length, 'user-agent': userAgent },
        timeout: timeoutMs,
        ...(signal ? { signal } : {}),
      },
      (res) => {
        res.resume(); // the answer's body is of no use; drain it
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          resolve(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, error: `HTTP ${status}` });
        });
        res.on('error', (e) => resolve({ ok: false, error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
    req.end(payload);
  });
}
