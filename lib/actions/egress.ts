import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { classify, formatIp, parseIp, type Allowlist } from './address';

/*
 * Webhook egress: the host of every request is resolved first, each address it resolves to is
 * checked against the map's allowlist (lib/actions/address.ts), and the connection then goes to
 * the very addresses that were checked. A name cannot resolve to a public address for the check and
 * to 169.254.169.254 for the connection (DNS rebinding), because there is no second lookup.
 *
 * The request goes through node:http / node:https with a `lookup` that answers with the vetted
 * addresses. Node's fetch (undici) would need an undici Agent with `connect.lookup`, and Node 20
 * does not expose undici's classes without installing the package. TLS still verifies the
 * certificate against the URL's host name (SNI and the check use the name, not the address).
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** DNS: every address of a name (tests inject their own). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolve: Resolve = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export type Vetted = { ok: true; addresses: ResolvedAddress[] } | { ok: false; detail: string };

/**
 * Resolves the URL's host and checks each address. A host the allowlist names is allowed whatever it
 * resolves to; otherwise every address must be public or inside an allowed address or range.
 * DNS failures throw (the caller treats them as network errors).
 */
export async function vetHost(url: URL, allow: Allowlist, resolve: Resolve): Promise<Vetted> {
  const host = url.hostname;
  const literal = parseIp(host);
  const addresses: ResolvedAddress[] = literal
    ? [{ address: formatIp(literal), family: literal.family }]
    : await resolve(host);
  if (addresses.length === 0) throw Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' });
  if (allow.allowsName(host)) return { ok: true, addresses };
  for (const { address } of addresses) {
    const ip = parseIp(address);
    if (!ip) return { ok: false, detail: `blocked address: ${host} resolves to '${address}'` };
    if (!allow.allowsAddress(ip)) {
      const what = `${formatIp(ip)} (${classify(ip).replace('_', '-')})`;
      return { ok: false, detail: literal ? `blocked address: ${what}` : `blocked address: ${host} resolves to ${what}` };
    }
  }
  return { ok: true, addresses };
}

export interface PinnedInit {
  method: string;
  headers: Headers;
  body?: string | undefined;
  signal: AbortSignal;
}

/** One HTTP request to `url`, connecting only to `addresses`; the answer as a fetch Response. */
export function pinnedRequest(url: URL, init: PinnedInit, addresses: readonly ResolvedAddress[]): Promise<Response> {
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, addresses.map((a) => ({ address: a.address, family: a.family })));
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
  const headers: Record<string, string> = {};
  init.headers.forEach((value, name) => (headers[name] = value));
  if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Response>((resolve, reject) => {
    const req = send(url, { method: init.method, headers, lookup, signal: init.signal }, (res) => {
      try {
        resolve(toResponse(res));
      } catch (err) {
        res.destroy();
        reject(err);
      }
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const NO_BODY = new Set([101, 103, 204, 205, 304]);

function toResponse(res: IncomingMessage): Response {
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    try {
      headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
    } catch {
      // a header fetch would not accept either: left out
    }
  }
  const status = res.statusCode ?? 0;
  const body = NO_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
  if (body === null) res.resume();
  return new Response(body, { status, statusText: res.statusMessage ?? '', headers });
}
