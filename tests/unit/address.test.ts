import { describe, expect, it } from 'vitest';
import { Allowlist, classify, formatIp, parseAllowEntry, parseCidr, parseIp, type AddressClass } from '../../lib/actions/address';
import { vetHost, type ResolvedAddress } from '../../lib/actions/egress';

const kind = (text: string): AddressClass => {
  const ip = parseIp(text);
  if (!ip) throw new Error(`not an address: ${text}`);
  return classify(ip);
};

/** What the guard does with a URL: the URL parser first (it normalizes odd IPv4 spellings), then the class. */
const urlKind = (url: string): AddressClass => kind(new URL(url).hostname);

describe('classify: IPv4', () => {
  it.each<[string, AddressClass]>([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link_local'], // the instance metadata endpoint
    ['169.254.0.1', 'link_local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.100.100.200', 'shared'], // another cloud's metadata endpoint
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'reserved'],
    ['198.18.0.1', 'reserved'],
  ])('%s is %s', (address, expected) => {
    expect(kind(address)).toBe(expected);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.0', '100.63.255.255', '100.128.0.0', '169.253.255.255', '11.0.0.0', '126.255.255.255', '128.0.0.0', '193.0.0.1'])(
    '%s is public (the edges of the ranges)',
    (address) => {
      expect(kind(address)).toBe('public');
    },
  );
});

describe('classify: IPv6', () => {
  it.each<[string, AddressClass]>([
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fd00:ec2::254', 'private'], // EC2's IPv6 metadata endpoint
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['::1.2.3.4', 'reserved'], // IPv4-compatible, deprecated
    ['2001:0:4136:e378::1', 'reserved'], // Teredo
  ])('%s is %s', (address, expected) => {
    expect(kind(address)).toBe(expected);
  });

  it.each(['2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '2001:4860:4860::8888'])('%s is public', (address) => {
    expect(kind(address)).toBe('public');
  });

  it('judges IPv4 carried in IPv6 by the IPv4 address: mapped, NAT64, 6to4', () => {
    expect(kind('::ffff:127.0.0.1')).toBe('loopback');
    expect(kind('::ffff:7f00:1')).toBe('loopback');
    expect(kind('::FFFF:169.254.169.254')).toBe('link_local');
    expect(kind('::ffff:a9fe:a9fe')).toBe('link_local');
    expect(kind('::ffff:10.1.2.3')).toBe('private');
    expect(kind('::ffff:0:0')).toBe('unspecified');
    expect(kind('::ffff:8.8.8.8')).toBe('public');
    expect(kind('64:ff9b::7f00:1')).toBe('loopback');
    expect(kind('64:ff9b::8.8.8.8')).toBe('public');
    expect(kind('2002:a9fe:a9fe::1')).toBe('link_local');
    expect(kind('2002:0808:0808::1')).toBe('public');
  });
});

describe('odd spellings of an address', () => {
  it('decimal, octal, hex and short IPv4 forms in a URL are the address they stand for', () => {
    expect(new URL('http://2130706433/').hostname).toBe('127.0.0.1');
    expect(urlKind('http://2130706433/')).toBe('loopback');
    expect(urlKind('http://0x7f.1/')).toBe('loopback');
    expect(urlKind('http://0x7f000001/')).toBe('loopback');
    expect(urlKind('http://0177.0.0.1/')).toBe('loopback');
    expect(urlKind('http://017700000001/')).toBe('loopback');
    expect(urlKind('http://127.1/')).toBe('loopback');
    expect(urlKind('http://127.0.0.1./')).toBe('loopback');
    expect(urlKind('http://0/')).toBe('unspecified');
    expect(urlKind('http://2852039166/')).toBe('link_local'); // 169.254.169.254
    expect(urlKind('http://0xa9.0xfe.0xa9.0xfe/')).toBe('link_local');
    expect(urlKind('http://[::ffff:127.0.0.1]/')).toBe('loopback');
    expect(urlKind('http://[::ffff:169.254.169.254]/')).toBe('link_local');
    expect(urlKind('http://[0:0:0:0:0:ffff:7f00:1]/')).toBe('loopback');
    expect(urlKind('http://[::]/')).toBe('unspecified');
  });

  it('the parser reads the same spellings itself (inet_aton rules), not only through the URL parser', () => {
    for (const text of ['2130706433', '0x7f.1', '0x7F.0.0.1', '0177.0.0.1', '127.1', '127.0.1', '0x7f000001', '017700000001']) {
      expect(formatIp(parseIp(text)!), text).toBe('127.0.0.1');
    }
  });

  it('names and broken addresses are not addresses', () => {
    for (const text of ['example.com', 'localhost', 'face.bad', '1.2.3.4.5', '256.1.1.1', '1.2.3.0400', '0x1.0x100.1.1', '08.1.1.1', '::g', '1::2::3', '']) {
      expect(parseIp(text), text).toBeUndefined();
    }
  });

  it('formats addresses conventionally', () => {
    expect(formatIp(parseIp('0:0:0:0:0:0:0:1')!)).toBe('::1');
    expect(formatIp(parseIp('fe80:0:0:0:0:0:0:1')!)).toBe('fe80::1');
    expect(formatIp(parseIp('1:0:0:2:0:0:0:3')!)).toBe('1:0:0:2::3');
    expect(formatIp(parseIp('1:2:3:4:5:6:7:8')!)).toBe('1:2:3:4:5:6:7:8');
    expect(formatIp(parseIp('0x0a.0.0.1')!)).toBe('10.0.0.1');
  });
});

describe('the allowlist', () => {
  it('accepts host names, addresses and ranges; refuses anything else', () => {
    expect(parseAllowEntry('localhost')).toEqual({ kind: 'host', name: 'localhost' });
    expect(parseAllowEntry('Orders.Internal.')).toEqual({ kind: 'host', name: 'orders.internal' });
    expect(parseAllowEntry('127.0.0.1')).toMatchObject({ kind: 'range', cidr: { family: 4, bits: 32 } });
    expect(parseAllowEntry('::1')).toMatchObject({ kind: 'range', cidr: { family: 6, bits: 128 } });
    expect(parseAllowEntry('[::1]')).toMatchObject({ kind: 'range' });
    expect(parseAllowEntry('10.0.0.0/8')).toMatchObject({ kind: 'range', cidr: { bits: 8 } });
    expect(parseAllowEntry('fd00::/8')).toMatchObject({ kind: 'range', cidr: { family: 6, bits: 8 } });
    for (const bad of ['10.0.0.0/33', '::/129', '1.2.3', '10.0.0.0/8/1', 'http://localhost', 'bad host', 'a..b', '*.internal', '']) {
      expect(parseAllowEntry(bad), bad).toBeUndefined();
    }
    expect(() => new Allowlist(['localhost', 'nope!'])).toThrow(/nope!/);
  });

  it('allows public addresses, and the named ones', () => {
    const allow = new Allowlist(['10.1.0.0/16', '::1', 'localhost']);
    expect(allow.allowsAddress(parseIp('8.8.8.8')!)).toBe(true);
    expect(allow.allowsAddress(parseIp('10.1.2.3')!)).toBe(true);
    expect(allow.allowsAddress(parseIp('::ffff:10.1.2.3')!)).toBe(true); // mapped: the IPv4 entry covers it
    expect(allow.allowsAddress(parseIp('10.2.0.1')!)).toBe(false);
    expect(allow.allowsAddress(parseIp('::1')!)).toBe(true);
    expect(allow.allowsAddress(parseIp('127.0.0.1')!)).toBe(false); // ::1 is not 127.0.0.1
    expect(allow.allowsName('LOCALHOST')).toBe(true);
    expect(allow.allowsName('localhost.')).toBe(true);
    expect(allow.allowsName('localhost.example')).toBe(false);
    expect(parseCidr('10.1.2.3/16')).toEqual(parseCidr('10.1.0.0/16')); // host bits are ignored
  });
});

describe('vetHost: every address a name resolves to is checked', () => {
  const answers =
    (map: Record<string, string[]>) =>
    async (host: string): Promise<ResolvedAddress[]> =>
      (map[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  const resolve = answers({
    'public.test': ['93.184.216.34'],
    'metadata.test': ['169.254.169.254'],
    'mixed.test': ['93.184.216.34', '10.0.0.5'],
    'v6.test': ['2606:4700::1', '::1'],
    'mapped.test': ['::ffff:127.0.0.1'],
  });
  const none = new Allowlist([]);

  it('lets a public host through, pinned to what it resolved to', async () => {
    expect(await vetHost(new URL('https://public.test/x'), none, resolve)).toEqual({ ok: true, addresses: [{ address: '93.184.216.34', family: 4 }] });
  });

  it('blocks a name that resolves to a private address, even one of several', async () => {
    expect(await vetHost(new URL('http://metadata.test/latest'), none, resolve)).toEqual({
      ok: false,
      detail: 'blocked address: metadata.test resolves to 169.254.169.254 (link-local)',
    });
    expect(await vetHost(new URL('http://mixed.test/'), none, resolve)).toMatchObject({ ok: false, detail: expect.stringMatching(/^blocked address: .*10\.0\.0\.5 \(private\)/) });
    expect(await vetHost(new URL('http://v6.test/'), none, resolve)).toMatchObject({ ok: false, detail: expect.stringContaining('::1 (loopback)') });
    expect(await vetHost(new URL('http://mapped.test/'), none, resolve)).toMatchObject({ ok: false, detail: expect.stringContaining('(loopback)') });
  });

  it('blocks address literals without asking DNS', async () => {
    const never = async (): Promise<ResolvedAddress[]> => {
      throw new Error('no DNS for a literal');
    };
    expect(await vetHost(new URL('http://0x7f.1:8080/'), none, never)).toEqual({ ok: false, detail: 'blocked address: 127.0.0.1 (loopback)' });
    expect(await vetHost(new URL('http://[::ffff:169.254.169.254]/'), none, never)).toMatchObject({ ok: false, detail: expect.stringContaining('(link-local)') });
    expect(await vetHost(new URL('http://8.8.8.8/'), none, never)).toEqual({ ok: true, addresses: [{ address: '8.8.8.8', family: 4 }] });
  });

  it('allows what the allowlist names: the host by name, or the address', async () => {
    expect(await vetHost(new URL('http://metadata.test/'), new Allowlist(['metadata.test']), resolve)).toEqual({
      ok: true,
      addresses: [{ address: '169.254.169.254', family: 4 }],
    });
    expect(await vetHost(new URL('http://mixed.test/'), new Allowlist(['10.0.0.0/24']), resolve)).toMatchObject({ ok: true });
    expect(await vetHost(new URL('http://127.0.0.1:9/'), new Allowlist(['127.0.0.1']), resolve)).toMatchObject({ ok: true });
    expect(await vetHost(new URL('http://2130706433:9/'), new Allowlist(['127.0.0.1']), resolve)).toMatchObject({ ok: true });
    expect(await vetHost(new URL('http://[::1]:9/'), new Allowlist(['127.0.0.1']), resolve)).toMatchObject({ ok: false });
  });

  it('a name without addresses is a DNS failure (a network error), not a block', async () => {
    await expect(vetHost(new URL('http://nowhere.test/'), none, resolve)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
