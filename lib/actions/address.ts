import { isIPv4, isIPv6 } from 'node:net';

/*
 * Which network addresses a webhook may reach (SSRF guard). A map's webhooks and LLM tools are
 * fetched from inside the deployment, so an address that points back into it (the instance
 * metadata endpoint, loopback, the VPC, the Lambda runtime API) is refused unless the map's
 * `network.allow` names the host or the address.
 *
 * Addresses are numbers here (IPv4: 32 bits, IPv6: 128 bits). An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is its IPv4 address, and NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are
 * judged by the IPv4 address they carry.
 */

export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link_local'
  | 'unspecified'
  | 'shared' // 100.64.0.0/10, carrier-grade NAT (and some clouds' metadata, e.g. 100.100.100.200)
  | 'multicast'
  | 'reserved'; // documentation, benchmarking, IETF, 240/4, broadcast, deprecated IPv6 forms

export interface Ip {
  family: 4 | 6;
  value: bigint;
}

/** An address range: `10.0.0.0/8`, `fc00::/7`, or one address (full prefix). */
export interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

const V4_RANGES: Array<[string, AddressClass]> = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link_local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
];

const V6_RANGES: Array<[string, AddressClass]> = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['100::/64', 'reserved'],
  ['2001::/32', 'reserved'], // Teredo: the IPv4 end is hidden in it
  ['2001:db8::/32', 'reserved'],
  ['fc00::/7', 'private'],
  ['fe80::/10', 'link_local'],
  ['fec0::/10', 'private'], // site-local, deprecated
  ['ff00::/8', 'multicast'],
];

const parsedRanges = <T>(ranges: Array<[string, T]>): Array<[Cidr, T]> => ranges.map(([cidr, kind]) => [parseCidr(cidr)!, kind]);
const V4 = parsedRanges(V4_RANGES);
const V6 = parsedRanges(V6_RANGES);

const MAPPED = parseCidr('::ffff:0:0/96')!;
const NAT64 = parseCidr('64:ff9b::/96')!;
const SIX_TO_FOUR = parseCidr('2002::/16')!;
const GLOBAL_UNICAST = parseCidr('2000::/3')!;

/**
 * Parses an IPv4 address the way URLs and inet_aton read them: one to four parts, each decimal,
 * hex (`0x7f`) or octal (`0177`), the last filling the remaining bytes (`127.1`, `2130706433`).
 */
export function parseIPv4(text: string): Ip | undefined {
  const parts = text.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop(); // a trailing dot, as URLs allow
  if (parts.length < 1 || parts.length > 4) return undefined;
  const numbers: bigint[] = [];
  for (const part of parts) {
    let n: bigint;
    if (/^0x[0-9a-f]*$/i.test(part)) n = part.length === 2 ? 0n : BigInt(part);
    else if (/^0[0-7]+$/.test(part)) n = BigInt(`0o${part.slice(1)}`);
    else if (/^(0|[1-9][0-9]*)$/.test(part)) n = BigInt(part);
    else return undefined;
    numbers.push(n);
  }
  const last = numbers.pop()!;
  if (numbers.some((n) => n > 255n)) return undefined;
  if (last >= 1n << BigInt(8 * (4 - numbers.length))) return undefined;
  let value = 0n;
  numbers.forEach((n, i) => (value |= n << BigInt(8 * (3 - i))));
  return { family: 4, value: value | last };
}

/** Parses an IPv6 address (`::1`, `::ffff:127.0.0.1`, `[fe80::1]`; a `%zone` is ignored). */
export function parseIPv6(text: string): Ip | undefined {
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  s = s.replace(/%.*$/, '');
  if (!isIPv6(s)) return undefined;
  // A dotted IPv4 end (::ffff:1.2.3.4) is the last two groups.
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  const last = s.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseIPv4Strict(last);
    if (!v4) return undefined;
    tail = [Number(v4.value >> 16n), Number(v4.value & 0xffffn)];
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const gap = s.indexOf('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = groups(gap >= 0 ? s.slice(0, gap) : s);
  const right = [...(gap >= 0 ? groups(s.slice(gap + 2)) : []), ...tail];
  const fill = 8 - left.length - right.length;
  if (fill < 0 || (gap < 0 && fill !== 0)) return undefined;
  const all = [...left, ...new Array<number>(fill).fill(0), ...right];
  return { family: 6, value: all.reduce((v, g) => (v << 16n) | BigInt(g), 0n) };
}

function parseIPv4Strict(text: string): Ip | undefined {
  return isIPv4(text) ? parseIPv4(text) : undefined;
}

/** An IP address in any spelling a URL host or a DNS answer may carry; undefined for a name. */
export function parseIp(text: string): Ip | undefined {
  return parseIPv6(text) ?? (/^[0-9a-fA-Fx.]+$/.test(text) && /\d/.test(text) ? parseIPv4(text) : undefined);
}

/** `10.0.0.0/8`, `fd00::/8`, or a single address. */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, prefix, extra] = text.split('/');
  if (extra !== undefined || addr === undefined) return undefined;
  const ip = addr.includes(':') ? parseIPv6(addr) : parseIPv4Strict(addr);
  if (!ip) return undefined;
  const width = ip.family === 4 ? 32 : 128;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return undefined;
  const bits = prefix === undefined ? width : Number(prefix);
  if (bits > width) return undefined;
  return { family: ip.family, base: ip.value & mask(width, bits), bits };
}

function mask(width: number, bits: number): bigint {
  return bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
}

export function inCidr(ip: Ip, cidr: Cidr): boolean {
  if (ip.family !== cidr.family) return false;
  return (ip.value & mask(ip.family === 4 ? 32 : 128, cidr.bits)) === cidr.base;
}

/** The IPv4 address an IPv6 address stands for (mapped ::ffff:a.b.c.d), if it is one. */
export function unmapped(ip: Ip): Ip {
  return ip.family === 6 && inCidr(ip, MAPPED) ? { family: 4, value: ip.value & 0xffffffffn } : ip;
}

/** What kind of address this is; anything but `public` stays unreachable unless allowed. */
export function classify(ip: Ip): AddressClass {
  const a = unmapped(ip);
  if (a.family === 4) return V4.find(([cidr]) => inCidr(a, cidr))?.[1] ?? 'public';
  // IPv4 carried inside IPv6 is judged as that IPv4 address.
  if (inCidr(a, NAT64)) return classify({ family: 4, value: a.value & 0xffffffffn });
  if (inCidr(a, SIX_TO_FOUR)) return classify({ family: 4, value: (a.value >> 80n) & 0xffffffffn });
  const known = V6.find(([cidr]) => inCidr(a, cidr))?.[1];
  if (known) return known;
  return inCidr(a, GLOBAL_UNICAST) ? 'public' : 'reserved';
}

/** Conventional text of an address (IPv4 dotted, IPv6 compressed), for details and logs. */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(16 * (7 - i))) & 0xffffn));
  // The longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * A `network.allow` entry of the map: a host name (`localhost`, `orders.internal`), an address
 * (`127.0.0.1`, `::1`) or a range (`10.0.0.0/8`).
 */
export type AllowEntry = { kind: 'host'; name: string } | { kind: 'range'; cidr: Cidr };

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

export function parseAllowEntry(text: string): AllowEntry | undefined {
  const cidr = parseCidr(text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text);
  if (cidr) return { kind: 'range', cidr };
  if (/^[\d.]+(\/\d+)?$/.test(text) || text.includes('/') || text.includes(':')) return undefined; // a broken address, not a name
  return HOST_NAME.test(text) ? { kind: 'host', name: normalizeHost(text) } : undefined;
}

/** Host names compare lowercased, without a trailing dot. */
export const normalizeHost = (host: string): string => host.toLowerCase().replace(/\.$/, '');

/** The allowlist of a map, compiled once. */
export class Allowlist {
  private readonly names = new Set<string>();
  private readonly ranges: Cidr[] = [];

  constructor(entries: readonly string[]) {
    for (const text of entries) {
      const entry = parseAllowEntry(text);
      if (!entry) throw new Error(`not a host name, address or range: '${text}'`);
      if (entry.kind === 'host') this.names.add(entry.name);
      else this.ranges.push(entry.cidr);
    }
  }

  /** Whether the URL's host is named as such (`localhost`). */
  allowsName(host: string): boolean {
    return this.names.has(normalizeHost(host));
  }

  /** Whether an address is allowed: public, or inside an allowed address or range. */
  allowsAddress(ip: Ip): boolean {
    const a = unmapped(ip);
    return classify(a) === 'public' || this.ranges.some((r) => inCidr(a, r));
  }
}
