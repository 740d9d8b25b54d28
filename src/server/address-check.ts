import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Which addresses a search by public URL may connect to: globally reachable unicast only, judged against
 * IANA's IPv4 and IPv6 Special-Purpose Address Registries row by row, never this machine, and every IPv6
 * form that carries an IPv4 address judged by that IPv4 address.
 */

/** A row of an IANA special-purpose registry. */
export interface SpecialBlock {
  prefix: string;
  name: string;
  rfc: string;
  /** The registry's "Globally Reachable"; null where it says N/A (refused here: nothing vouches for it). */
  globallyReachable: boolean | null;
}

/** IANA IPv4 Special-Purpose Address Registry (iana-ipv4-special-registry), with multicast beside it. */
export const IPV4_SPECIAL: readonly SpecialBlock[] = [
  { prefix: '0.0.0.0/8', name: '"This network"', rfc: 'RFC 791', globallyReachable: false },
  { prefix: '0.0.0.0/32', name: '"This host on this network"', rfc: 'RFC 1122', globallyReachable: false },
  { prefix: '10.0.0.0/8', name: 'Private-Use', rfc: 'RFC 1918', globallyReachable: false },
  { prefix: '100.64.0.0/10', name: 'Shared Address Space', rfc: 'RFC 6598', globallyReachable: false },
  { prefix: '127.0.0.0/8', name: 'Loopback', rfc: 'RFC 1122', globallyReachable: false },
  { prefix: '169.254.0.0/16', name: 'Link Local', rfc: 'RFC 3927', globallyReachable: false },
  { prefix: '172.16.0.0/12', name: 'Private-Use', rfc: 'RFC 1918', globallyReachable: false },
  { prefix: '192.0.0.0/24', name: 'IETF Protocol Assignments', rfc: 'RFC 6890', globallyReachable: false },
  {
    prefix: '192.0.0.0/29',
    name: 'IPv4 Service Continuity Prefix',
    rfc: 'RFC 7335',
    globallyReachable: false,
  },
  { prefix: '192.0.0.8/32', name: 'IPv4 dummy address', rfc: 'RFC 7600', globallyReachable: false },
  { prefix: '192.0.0.9/32', name: 'Port Control Protocol Anycast', rfc: 'RFC 7723', globallyReachable: true },
  {
    prefix: '192.0.0.10/32',
    name: 'Traversal Using Relays around NAT Anycast',
    rfc: 'RFC 8155',
    globallyReachable: true,
  },
  { prefix: '192.0.0.170/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 7050', globallyReachable: false },
  { prefix: '192.0.0.171/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 7050', globallyReachable: false },
  { prefix: '192.0.2.0/24', name: 'Documentation (TEST-NET-1)', rfc: 'RFC 5737', globallyReachable: false },
  { prefix: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535', globallyReachable: true },
  { prefix: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450', globallyReachable: true },
  {
    prefix: '192.88.99.0/24',
    name: 'Deprecated (6to4 Relay Anycast)',
    rfc: 'RFC 7526',
    globallyReachable: null,
  },
  { prefix: '192.168.0.0/16', name: 'Private-Use', rfc: 'RFC 1918', globallyReachable: false },
  {
    prefix: '192.175.48.0/24',
    name: 'Direct Delegation AS112 Service',
    rfc: 'RFC 7534',
    globallyReachable: true,
  },
  { prefix: '198.18.0.0/15', name: 'Benchmarking', rfc: 'RFC 2544', globallyReachable: false },
  {
    prefix: '198.51.100.0/24',
    name: 'Documentation (TEST-NET-2)',
    rfc: 'RFC 5737',
    globallyReachable: false,
  },
  { prefix: '203.0.113.0/24', name: 'Documentation (TEST-NET-3)', rfc: 'RFC 5737', globallyReachable: false },
  { prefix: '240.0.0.0/4', name: 'Reserved', rfc: 'RFC 1112', globallyReachable: false },
  { prefix: '255.255.255.255/32', name: 'Limited Broadcast', rfc: 'RFC 919', globallyReachable: false },
  // Not in the special-purpose registry but in the IPv4 address space one: never a unicast host.
  { prefix: '224.0.0.0/4', name: 'Multicast', rfc: 'RFC 5771', globallyReachable: false },
];

/** IANA IPv6 Special-Purpose Address Registry (iana-ipv6-special-registry). */
export const IPV6_SPECIAL: readonly SpecialBlock[] = [
  { prefix: '::1/128', name: 'Loopback Address', rfc: 'RFC 4291', globallyReachable: false },
  { prefix: '::/128', name: 'Unspecified Address', rfc: 'RFC 4291', globallyReachable: false },
  { prefix: '::ffff:0:0/96', name: 'IPv4-mapped Address', rfc: 'RFC 4291', globallyReachable: false },
  { prefix: '64:ff9b::/96', name: 'IPv4-IPv6 Translat.', rfc: 'RFC 6052', globallyReachable: true },
  { prefix: '64:ff9b:1::/48', name: 'IPv4-IPv6 Translat.', rfc: 'RFC 8215', globallyReachable: false },
  { prefix: '100::/64', name: 'Discard-Only Address Block', rfc: 'RFC 6666', globallyReachable: false },
  { prefix: '100:0:0:1::/64', name: 'Dummy IPv6 Prefix', rfc: 'RFC 9780', globallyReachable: false },
  { prefix: '2001::/23', name: 'IETF Protocol Assignments', rfc: 'RFC 2928', globallyReachable: false },
  { prefix: '2001::/32', name: 'TEREDO', rfc: 'RFC 4380', globallyReachable: null },
  {
    prefix: '2001:1::1/128',
    name: 'Port Control Protocol Anycast',
    rfc: 'RFC 7723',
    globallyReachable: true,
  },
  {
    prefix: '2001:1::2/128',
    name: 'Traversal Using Relays around NAT Anycast',
    rfc: 'RFC 8155',
    globallyReachable: true,
  },
  {
    prefix: '2001:1::3/128',
    name: 'DNS-SD Service Registration Protocol Anycast',
    rfc: 'RFC 9665',
    globallyReachable: true,
  },
  { prefix: '2001:2::/48', name: 'Benchmarking', rfc: 'RFC 5180', globallyReachable: false },
  { prefix: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450', globallyReachable: true },
  { prefix: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535', globallyReachable: true },
  {
    prefix: '2001:10::/28',
    name: 'Deprecated (previously ORCHID)',
    rfc: 'RFC 4843',
    globallyReachable: null,
  },
  { prefix: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343', globallyReachable: true },
  {
    prefix: '2001:30::/28',
    name: 'Drone Remote ID Protocol Entity Tags (DETs) Prefix',
    rfc: 'RFC 9374',
    globallyReachable: true,
  },
  { prefix: '2001:db8::/32', name: 'Documentation', rfc: 'RFC 3849', globallyReachable: false },
  { prefix: '2002::/16', name: '6to4', rfc: 'RFC 3056', globallyReachable: null },
  {
    prefix: '2620:4f:8000::/48',
    name: 'Direct Delegation AS112 Service',
    rfc: 'RFC 7534',
    globallyReachable: true,
  },
  { prefix: '3fff::/20', name: 'Documentation', rfc: 'RFC 9637', globallyReachable: false },
  { prefix: '5f00::/16', name: 'Segment Routing (SRv6) SIDs', rfc: 'RFC 9602', globallyReachable: false },
  { prefix: 'fc00::/7', name: 'Unique-Local', rfc: 'RFC 4193', globallyReachable: false },
  { prefix: 'fe80::/10', name: 'Link-Local Unicast', rfc: 'RFC 4291', globallyReachable: false },
];

/**
 * IPv6 forms whose last 32 bits are an IPv4 address that the packets end up at (a dual-stack socket, a
 * translator): judged by that IPv4 address alone. 6to4 (2002::/16), Teredo (2001::/32) and local-use
 * NAT64 (64:ff9b:1::/48) carry one too but are refused whole (rows above); ISATAP interface ids carry one
 * under any prefix (see refusedIpv6).
 */
export const IPV4_EMBEDDING: readonly { prefix: string; name: string; rfc: string }[] = [
  { prefix: '::ffff:0:0/96', name: 'IPv4-mapped', rfc: 'RFC 4291' },
  { prefix: '::/96', name: 'IPv4-compatible', rfc: 'RFC 4291, deprecated' },
  { prefix: '::ffff:0:0:0/96', name: 'IPv4-translated', rfc: 'RFC 2765' },
  { prefix: '64:ff9b::/96', name: 'NAT64', rfc: 'RFC 6052' },
];

/** IANA allocates global unicast from 2000::/3 only: the rest of the space is reserved or special. */
const GLOBAL_UNICAST = '2000::/3';

const LOOPBACK = 'a loopback address (this machine)';
const OWN = 'an address of this machine';
const reserved = (block: { name: string; prefix: string }) =>
  `a private, link-local or reserved address (${block.name}, ${block.prefix})`;

interface Prefix {
  base: bigint;
  bits: number;
  width: 32 | 128;
}

function parsePrefix(text: string): Prefix {
  const [address = '', bits = ''] = text.split('/');
  const width = isIP(address) === 4 ? 32 : 128;
  return { base: width === 32 ? ipv4Value(address) : ipv6Value(address), bits: Number(bits), width };
}

const contains = (prefix: Prefix, value: bigint) =>
  value >> BigInt(prefix.width - prefix.bits) === prefix.base >> BigInt(prefix.width - prefix.bits);

const v4Blocks = IPV4_SPECIAL.map((block) => ({ block, prefix: parsePrefix(block.prefix) }));
const v6Blocks = IPV6_SPECIAL.map((block) => ({ block, prefix: parsePrefix(block.prefix) }));
const embeddings = IPV4_EMBEDDING.map((form) => ({ form, prefix: parsePrefix(form.prefix) }));
const loopbackV4 = parsePrefix('127.0.0.0/8');
const globalUnicast = parsePrefix(GLOBAL_UNICAST);

/** The registry row that applies: the most specific one holding the address. */
function mostSpecific(
  blocks: { block: SpecialBlock; prefix: Prefix }[],
  value: bigint,
): SpecialBlock | undefined {
  let found: { block: SpecialBlock; prefix: Prefix } | undefined;
  for (const entry of blocks)
    if (contains(entry.prefix, value) && (!found || entry.prefix.bits > found.prefix.bits)) found = entry;
  return found?.block;
}

function ipv4Value(text: string): bigint {
  return text.split('.').reduce((value, part) => (value << 8n) | BigInt(Number(part)), 0n);
}

function ipv4Text(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 255n)).join('.');
}

/** An IPv6 address (checked by isIP; a zone id allowed) as a 128-bit number. */
function ipv6Value(text: string): bigint {
  let address = text.replace(/%.*$/, '').toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted) {
    const v4 = ipv4Value(dotted[1]!);
    address = `${address.slice(0, dotted.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((value, group) => (value << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}

/** This machine's own addresses, read again at most every few seconds. */
let own = { at: 0, values: new Set<string>() };
function isOwnAddress(value: bigint, family: 4 | 6): boolean {
  if (Date.now() - own.at > 5_000) {
    const values = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const entry of list ?? [])
        values.add(
          entry.family === 'IPv4' ? `4:${ipv4Value(entry.address)}` : `6:${ipv6Value(entry.address)}`,
        );
    own = { at: Date.now(), values };
  }
  return own.values.has(`${family}:${value}`);
}

/** Why an address may not be fetched, or undefined when it may. */
export function refusedAddress(address: string, allowLoopback = false): string | undefined {
  const family = isIP(address.replace(/%.*$/, ''));
  if (family === 4) return refusedIpv4(ipv4Value(address), allowLoopback);
  if (family === 6) return refusedIpv6(ipv6Value(address), allowLoopback);
  return 'not an IP address';
}

function refusedIpv4(value: bigint, allowLoopback: boolean): string | undefined {
  if (contains(loopbackV4, value)) return allowLoopback ? undefined : LOOPBACK;
  if (isOwnAddress(value, 4)) return OWN;
  const block = mostSpecific(v4Blocks, value);
  return block && block.globallyReachable !== true ? reserved(block) : undefined;
}

function refusedIpv6(value: bigint, allowLoopback: boolean): string | undefined {
  if (value === 1n) return allowLoopback ? undefined : LOOPBACK;
  if (value !== 0n)
    for (const { form, prefix } of embeddings)
      if (contains(prefix, value)) return judgedBy(form.name, value & 0xffff_ffffn, allowLoopback);
  if (isOwnAddress(value, 6)) return OWN;
  const block = mostSpecific(v6Blocks, value);
  if (block && block.globallyReachable !== true) return reserved(block);
  if (!block && !contains(globalUnicast, value))
    return reserved({ name: 'not global unicast', prefix: `outside ${GLOBAL_UNICAST}` });
  // ISATAP (RFC 5214): an interface id of 0000:5efe or 0200:5efe, then the IPv4 address the router of
  // that prefix tunnels to.
  if (((value >> 32n) & 0xfdff_ffffn) === 0x5efen)
    return judgedBy('ISATAP', value & 0xffff_ffffn, allowLoopback);
  return undefined;
}

/** The verdict on the IPv4 address an IPv6 form carries, saying which form and address it was. */
function judgedBy(form: string, ipv4: bigint, allowLoopback: boolean): string | undefined {
  const why = refusedIpv4(ipv4, allowLoopback);
  return why && `${/^[aeiou]/i.test(form) ? 'an' : 'a'} ${form} form of ${ipv4Text(ipv4)}, ${why}`;
}
