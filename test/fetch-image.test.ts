import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import sharp from 'sharp';
import { RequestError } from '../src/errors.ts';
import { IPV4_EMBEDDING, IPV4_SPECIAL, IPV6_SPECIAL } from '../src/server/address-check.ts';
import { fetchImage, type HostResolver } from '../src/server/fetch-image.ts';
import { listenOnLoopback } from './helpers.ts';
import { type ConnectionAttempt, guardConnections } from './network-guard.ts';

let server: Server;
let port: number;
let image: Buffer;
const stalled = new Set<ServerResponse>();
let guard: ReturnType<typeof guardConnections>;

/** Test names: images.test is this machine; mixed.test has one loopback and one private address. */
const resolver: HostResolver = async (hostname) => {
  const table: Record<string, { address: string; family: number }[]> = {
    'images.test': [{ address: '127.0.0.1', family: 4 }],
    'dual.test': [
      { address: '::1', family: 6 },
      { address: '127.0.0.1', family: 4 },
    ],
    'mixed.test': [
      { address: '127.0.0.1', family: 4 },
      { address: '10.0.0.7', family: 4 },
    ],
    'private.test': [{ address: '192.168.1.20', family: 4 }],
    'metadata.test': [{ address: '169.254.169.254', family: 4 }],
  };
  const found = table[hostname];
  if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return found;
};

before(async () => {
  guard = guardConnections();
  image = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#3366cc' } })
    .jpeg()
    .toBuffer();
  server = createServer((req, res) => {
    const stall = () => stalled.add(res); // headers (and maybe a first chunk) sent, the rest never comes
    switch (req.url) {
      case '/cat.jpg':
        return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(image);
      case '/page.html':
        res.writeHead(200, { 'content-type': 'text/html', 'content-length': 200_000 });
        res.write('<html>'.padEnd(16_000, ' '));
        return stall();
      case '/missing.jpg':
        res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 100_000 });
        res.write('not here');
        return stall();
      case '/stall.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': image.length });
        res.write(image.subarray(0, 10));
        return stall();
      case '/big.jpg':
        return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(Buffer.alloc(600_000));
      case '/to-private':
        return res.writeHead(302, { location: 'http://private.test/secret.jpg' }).end();
      case '/to-metadata':
        return res.writeHead(302, { location: 'http://metadata.test/latest/meta-data/' }).end();
      case '/to-name':
        return res.writeHead(302, { location: `http://images.test:${port}/cat.jpg` }).end();
      case '/loop':
        return res.writeHead(302, { location: '/loop' }).end();
      default:
        return res.writeHead(404).end();
    }
  });
  const base = await listenOnLoopback(server);
  port = Number(new URL(base).port);
});
after(() => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  server.close();
  guard.restore();
});
beforeEach(() => guard.reset());

const options = { maxBytes: 500_000, allowLoopback: true, resolve: resolver };

async function refused(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RequestError, `expected a RequestError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

const onlyLoopback = (attempts: ConnectionAttempt[]) => {
  assert.ok(attempts.length > 0, 'some connection was made');
  for (const a of attempts) assert.ok(a.allowed && /^(127\.|::1)/.test(a.host), `connected to ${a.host}`);
};

describe('fetching an image URL', () => {
  it('fetches by host name through the system resolver (localhost)', async () => {
    const bytes = await fetchImage(`http://localhost:${port}/cat.jpg`, {
      maxBytes: 500_000,
      allowLoopback: true,
    });
    assert.deepEqual(bytes, image);
    onlyLoopback(guard.attempts);
  });

  it('connects only to the checked addresses of a name, trying each in turn', async () => {
    assert.deepEqual(await fetchImage(`http://images.test:${port}/cat.jpg`, options), image);
    assert.deepEqual(
      guard.attempts.map((a) => a.host),
      ['127.0.0.1'],
    );
    guard.reset();
    // ::1 answers nothing here (the server listens on 127.0.0.1 only): the next address is tried.
    assert.deepEqual(await fetchImage(`http://dual.test:${port}/cat.jpg`, options), image);
    assert.deepEqual(
      guard.attempts.map((a) => a.host),
      ['::1', '127.0.0.1'],
    );
  });

  it('refuses a name with any refused address, before any connection', async () => {
    await refused(
      fetchImage(`http://mixed.test:${port}/cat.jpg`, options),
      'URL_NOT_ALLOWED',
      /^That URL is not allowed: mixed\.test resolves to 10\.0\.0\.7, a private, link-local or reserved address \(Private-Use, 10\.0\.0\.0\/8\); use a public image URL$/,
    );
    assert.deepEqual(guard.attempts, []);
    await refused(
      fetchImage(`http://localhost:${port}/cat.jpg`, { maxBytes: 500_000 }),
      'URL_NOT_ALLOWED',
      /localhost resolves to 127\.0\.0\.1, a loopback address \(this machine\)/,
    );
    await refused(
      fetchImage('http://[fd00:ec2::254]/', { maxBytes: 1000 }),
      'URL_NOT_ALLOWED',
      /fd00:ec2::254 is a private/,
    );
    assert.deepEqual(guard.attempts, []);
  });

  it('checks every redirect again: a name, then a private or metadata address behind a name', async () => {
    assert.deepEqual(await fetchImage(`http://127.0.0.1:${port}/to-name`, options), image);
    onlyLoopback(guard.attempts);
    guard.reset();
    await refused(
      fetchImage(`http://images.test:${port}/to-private`, options),
      'URL_NOT_ALLOWED',
      /private\.test resolves to 192\.168\.1\.20/,
    );
    await refused(
      fetchImage(`http://images.test:${port}/to-metadata`, options),
      'URL_NOT_ALLOWED',
      /metadata\.test resolves to 169\.254\.169\.254/,
    );
    onlyLoopback(guard.attempts);
    await refused(
      fetchImage(`http://images.test:${port}/loop`, { ...options, maxRedirects: 2 }),
      'URL_FETCH_FAILED',
      /redirects more than 2 times/,
    );
  });

  it('refuses a page or an error status on its head, without waiting for the body', async () => {
    // Those bodies never finish: waiting for them would end in URL_TIMEOUT instead.
    const slow = { ...options, timeoutMs: 8000 };
    await refused(
      fetchImage(`http://images.test:${port}/page.html`, slow),
      'URL_FETCH_FAILED',
      /not an image \(content type "text\/html"\)/,
    );
    await refused(
      fetchImage(`http://images.test:${port}/missing.jpg`, slow),
      'URL_FETCH_FAILED',
      /answered HTTP 404/,
    );
  });

  it('gives up on a body that stalls, saying the time limit it was given', async () => {
    await refused(
      fetchImage(`http://images.test:${port}/stall.jpg`, { ...options, timeoutMs: 400 }),
      'URL_TIMEOUT',
      /did not answer within 0\.4 seconds/,
    );
  });

  it('says the size limit it was given, and names what failed on the network', async () => {
    await refused(
      fetchImage(`http://images.test:${port}/big.jpg`, options),
      'UPLOAD_TOO_LARGE',
      /larger than the limit of 500 KB/,
    );
    await refused(
      fetchImage('http://nowhere.test/cat.jpg', options),
      'URL_FETCH_FAILED',
      /ENOTFOUND nowhere\.test/,
    );
    await refused(fetchImage('ftp://images.test/cat.jpg', options), 'URL_NOT_ALLOWED', /not ftp:/);
  });

  it('lets every address through for the CLI (allowPrivate), still by the checked addresses', async () => {
    const bytes = await fetchImage(`http://localhost:${port}/cat.jpg`, {
      maxBytes: 500_000,
      allowPrivate: true,
    });
    assert.deepEqual(bytes, image);
    onlyLoopback(guard.attempts);
  });
});

/**
 * One example for every row of IANA's IPv4 and IPv6 Special-Purpose Address Registries (and every IPv6 form
 * that carries an IPv4 address), with the verdict this table expects: written out here, not derived from
 * the code's table, so a wrong row in either shows. 'fetched' means the check lets it through and a
 * connection is attempted (the guard stops it before any packet); otherwise the refusal's reason.
 */
const REGISTRY_ROWS: [row: string, address: string, verdict: RegExp | 'fetched'][] = [
  ['0.0.0.0/8', '0.1.2.3', /"This network", 0\.0\.0\.0\/8/],
  ['0.0.0.0/32', '0.0.0.0', /"This host on this network", 0\.0\.0\.0\/32/],
  ['10.0.0.0/8', '10.20.30.40', /Private-Use, 10\.0\.0\.0\/8/],
  ['100.64.0.0/10', '100.100.1.1', /Shared Address Space/],
  ['127.0.0.0/8', '127.0.0.2', /a loopback address \(this machine\)/],
  ['169.254.0.0/16', '169.254.169.254', /Link Local, 169\.254\.0\.0\/16/],
  ['172.16.0.0/12', '172.31.255.1', /Private-Use, 172\.16\.0\.0\/12/],
  ['192.0.0.0/24', '192.0.0.100', /IETF Protocol Assignments, 192\.0\.0\.0\/24/],
  ['192.0.0.0/29', '192.0.0.1', /IPv4 Service Continuity Prefix/],
  ['192.0.0.8/32', '192.0.0.8', /IPv4 dummy address/],
  ['192.0.0.9/32', '192.0.0.9', 'fetched'],
  ['192.0.0.10/32', '192.0.0.10', 'fetched'],
  ['192.0.0.170/32', '192.0.0.170', /NAT64\/DNS64 Discovery, 192\.0\.0\.170\/32/],
  ['192.0.0.171/32', '192.0.0.171', /NAT64\/DNS64 Discovery, 192\.0\.0\.171\/32/],
  ['192.0.2.0/24', '192.0.2.123', /Documentation \(TEST-NET-1\)/],
  ['192.31.196.0/24', '192.31.196.1', 'fetched'],
  ['192.52.193.0/24', '192.52.193.1', 'fetched'],
  ['192.88.99.0/24', '192.88.99.1', /6to4 Relay Anycast/],
  ['192.168.0.0/16', '192.168.1.20', /Private-Use, 192\.168\.0\.0\/16/],
  ['192.175.48.0/24', '192.175.48.1', 'fetched'],
  ['198.18.0.0/15', '198.19.0.1', /Benchmarking, 198\.18\.0\.0\/15/],
  ['198.51.100.0/24', '198.51.100.7', /Documentation \(TEST-NET-2\)/],
  ['203.0.113.0/24', '203.0.113.9', /Documentation \(TEST-NET-3\)/],
  ['240.0.0.0/4', '250.1.2.3', /Reserved, 240\.0\.0\.0\/4/],
  ['255.255.255.255/32', '255.255.255.255', /Limited Broadcast/],
  ['224.0.0.0/4', '239.1.2.3', /Multicast, 224\.0\.0\.0\/4/],
  ['::1/128', '::1', /a loopback address \(this machine\)/],
  ['::/128', '::', /Unspecified Address/],
  ['::ffff:0:0/96', '::ffff:10.0.0.1', /IPv4-mapped form of 10\.0\.0\.1, .*Private-Use/],
  ['::ffff:0:0/96', '::ffff:93.184.216.34', 'fetched'],
  ['64:ff9b::/96', '64:ff9b::7f00:1', /NAT64 form of 127\.0\.0\.1, a loopback address/],
  ['64:ff9b::/96', '64:ff9b::5db8:d822', 'fetched'],
  ['64:ff9b:1::/48', '64:ff9b:1::5db8:d822', /IPv4-IPv6 Translat\., 64:ff9b:1::\/48/],
  ['100::/64', '100::1', /Discard-Only Address Block/],
  ['100:0:0:1::/64', '100:0:0:1::1', /Dummy IPv6 Prefix/],
  ['2001::/23', '2001:100::1', /IETF Protocol Assignments, 2001::\/23/],
  ['2001::/32', '2001:0:4136:e378:8000:63bf:3fff:fdd2', /TEREDO, 2001::\/32/],
  ['2001:1::1/128', '2001:1::1', 'fetched'],
  ['2001:1::2/128', '2001:1::2', 'fetched'],
  ['2001:1::3/128', '2001:1::3', 'fetched'],
  ['2001:2::/48', '2001:2::1', /Benchmarking, 2001:2::\/48/],
  ['2001:3::/32', '2001:3::1', 'fetched'],
  ['2001:4:112::/48', '2001:4:112::1', 'fetched'],
  ['2001:10::/28', '2001:10::1', /previously ORCHID/],
  ['2001:20::/28', '2001:20::1', 'fetched'],
  ['2001:30::/28', '2001:30::1', 'fetched'],
  ['2001:db8::/32', '2001:db8::1', /Documentation, 2001:db8::\/32/],
  ['2002::/16', '2002:5db8:d822::1', /6to4, 2002::\/16/],
  ['2620:4f:8000::/48', '2620:4f:8000::1', 'fetched'],
  ['3fff::/20', '3fff::1', /Documentation, 3fff::\/20/],
  ['5f00::/16', '5f00::1', /Segment Routing \(SRv6\) SIDs/],
  ['fc00::/7', 'fd00:ec2::254', /Unique-Local, fc00::\/7/],
  ['fe80::/10', 'fe80::1', /Link-Local Unicast/],
  // IPv6 forms that carry an IPv4 address, judged by it.
  ['::/96', '::127.0.0.1', /IPv4-compatible form of 127\.0\.0\.1, a loopback address/],
  ['::/96', '::169.254.169.254', /IPv4-compatible form of 169\.254\.169\.254, .*Link Local/],
  ['::ffff:0:0:0/96', '::ffff:0:7f00:1', /IPv4-translated form of 127\.0\.0\.1, a loopback address/],
  ['::ffff:0:0:0/96', '::ffff:0:5db8:d822', 'fetched'],
  ['ISATAP', '2600::5efe:10.0.0.1', /ISATAP form of 10\.0\.0\.1, .*Private-Use/],
  ['ISATAP', '2600::200:5efe:5db8:d822', 'fetched'],
  // Outside the global unicast space IANA allocates from: site-local, multicast, unassigned.
  ['2000::/3', 'fec0::1', /not global unicast, outside 2000::\/3/],
  ['2000::/3', 'ff02::1', /not global unicast/],
  ['2000::/3', '4000::1', /not global unicast/],
  ['2000::/3', '2606:2800:220:1:248:1893:25c8:1946', 'fetched'],
];

describe('URL search against IANA special-purpose registries, row by row', () => {
  for (const [row, address, verdict] of REGISTRY_ROWS)
    it(`${row}: ${address} is ${verdict === 'fetched' ? 'fetched' : 'refused'}`, async () => {
      const url = new URL(`http://${address.includes(':') ? `[${address}]` : address}:8080/cat.jpg`);
      const fetching = fetchImage(url.href, { maxBytes: 1000, timeoutMs: 5000 });
      if (verdict === 'fetched') {
        await refused(fetching, 'URL_FETCH_FAILED', /test guard: no connection/);
        assert.deepEqual(guard.attempts, [
          { host: url.hostname.replace(/^\[|\]$/g, ''), port: 8080, allowed: false },
        ]);
      } else {
        await refused(fetching, 'URL_NOT_ALLOWED', verdict);
        assert.deepEqual(guard.attempts, [], 'no connection attempted');
      }
    });

  it('has an example for every row of the tables in the code', () => {
    const covered = new Set(REGISTRY_ROWS.map(([row]) => row));
    for (const { prefix } of [...IPV4_SPECIAL, ...IPV6_SPECIAL, ...IPV4_EMBEDDING])
      assert.ok(covered.has(prefix), `no example for ${prefix}`);
  });
});
