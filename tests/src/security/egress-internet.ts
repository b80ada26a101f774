import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A test "internet" for egress tests, in a network namespace the test makes, joined to the host
 * by a veth pair in 198.18.0.0/15 (benchmarking: private to sandboxes unless a CIDR rule opens
 * it). `web` (.2) serves HTTP on 80 (echoing the Host header and every header it got, or their
 * SHA-256 at /hashed; /bytes/<n>: n zero bytes, for throughput), HTTPS on
 * 443 with a certificate from a CA made at test time, a raw TCP echo on 7000, and the DNS
 * stand-in on 53, and a package index at /simple/ (one wheel); `other` (.3) serves HTTP on 80 and the TCP echo. Names map in `names`.
 */
export interface TestInternet {
  web: string;
  other: string;
  host: string;
  /** The /29 both servers are in. */
  cidr: string;
  dns: string;
  caPem: string;
  stop(): void;
}

const SERVERS = String.raw`
import base64, hashlib, json, os, socket, socketserver, ssl, sys, threading, zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
web, other, names, cert, key, index, token = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]

# A package index serving one wheel (PEP 503 simple API): kilnprobe 1.0, whose TOKEN is the test's.
def wheel():
    files = {'kilnprobe/__init__.py': 'TOKEN = %r\n' % token,
             'kilnprobe-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: kilnprobe\nVersion: 1.0\n',
             'kilnprobe-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n'}
    digest = lambda b: 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()
    record = ''.join('%s,%s,%d\n' % (n, digest(c.encode()), len(c.encode())) for n, c in files.items()) + 'kilnprobe-1.0.dist-info/RECORD,,\n'
    os.makedirs(os.path.join(index, 'packages')); os.makedirs(os.path.join(index, 'simple', 'kilnprobe'))
    path = os.path.join(index, 'packages', 'kilnprobe-1.0-py3-none-any.whl')
    with zipfile.ZipFile(path, 'w') as z:
        for n, c in files.items(): z.writestr(n, c)
        z.writestr('kilnprobe-1.0.dist-info/RECORD', record)
    sha = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    open(os.path.join(index, 'simple', 'kilnprobe', 'index.html'), 'w').write('<a href="/packages/kilnprobe-1.0-py3-none-any.whl#sha256=%s">kilnprobe-1.0-py3-none-any.whl</a>\n' % sha)
wheel()

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/simple/') or self.path.startswith('/packages/'):
            return self.static()
        if self.path.startswith('/bytes/'):
            return self.bytes(int(self.path[7:]))
        headers = dict(self.headers)
        if self.path == '/hashed':
            headers = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in headers.items()}
        body = json.dumps({'server': self.server.label, 'host': self.headers.get('Host'), 'headers': headers}).encode()
        self.send_response(200); self.send_header('content-type', 'application/json'); self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def static(self):
        path = os.path.normpath(os.path.join(index, self.path.lstrip('/')))
        if os.path.isdir(path): path = os.path.join(path, 'index.html')
        if not path.startswith(index + '/') or not os.path.isfile(path):
            self.send_response(404); self.send_header('content-length', '0'); self.end_headers(); return
        body = open(path, 'rb').read()
        self.send_response(200); self.send_header('content-type', 'text/html' if path.endswith('.html') else 'application/octet-stream'); self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def bytes(self, n):
        self.send_response(200); self.send_header('content-type', 'application/octet-stream'); self.send_header('content-length', str(n)); self.end_headers()
        chunk = b'\0' * 65536
        while n > 0:
            self.wfile.write(chunk[:min(n, 65536)]); n -= 65536
    def log_message(self, *a): pass

def http(addr, port, label, tls=False):
    s = ThreadingHTTPServer((addr, port), H); s.label = label
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b'echo:' + self.request.recv(100))

def echo(addr):
    s = socketserver.ThreadingTCPServer((addr, 7000), Echo); threading.Thread(target=s.serve_forever, daemon=True).start()

def dns():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((web, 53))
    while True:
        q, peer = u.recvfrom(512)
        try:
            at, labels = 12, []
            while q[at]:
                labels.append(q[at + 1:at + 1 + q[at]].decode().lower()); at += 1 + q[at]
            qtype = int.from_bytes(q[at + 1:at + 3], 'big'); end = at + 5
            ip = names.get('.'.join(labels))
            answers = b'' if ip is None or qtype != 1 else b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04' + socket.inet_aton(ip)
            flags = b'\x81\x80' if ip is not None else b'\x81\x83'
            u.sendto(q[:2] + flags + b'\x00\x01' + (b'\x00\x01' if answers else b'\x00\x00') + b'\x00\x00\x00\x00' + q[12:end] + answers, peer)
        except Exception:
            pass

http(web, 80, 'web'); http(web, 443, 'web-tls', tls=True); http(other, 80, 'other'); echo(web); echo(other)
print('ready', flush=True)
dns()
`;

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

/**
 * `names` maps test domains to the servers; `tlsNames` go into the HTTPS certificate;
 * `packageToken` is what the index's one wheel (kilnprobe 1.0) holds as `kilnprobe.TOKEN`.
 */
export async function startTestInternet(names: (net: { web: string; other: string }) => Record<string, string>, tlsNames: string[], packageToken = 'kiln'): Promise<TestInternet> {
  const tag = randomBytes(3).toString('hex');
  const ns = `kiln-egr-${tag}`;
  const vh = `ke${tag}h`;
  const vn = `ke${tag}n`;
  const octet = randomInt(0, 32) * 8;
  const base = `198.19.${randomInt(0, 256)}`;
  const host = `${base}.${octet + 1}`;
  const web = `${base}.${octet + 2}`;
  const other = `${base}.${octet + 3}`;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-egr-'));
  let servers: ChildProcess | undefined;
  const stop = (): void => {
    servers?.kill('SIGKILL');
    // Deleting the namespace removes its end of the veth pair and with it the host's end.
    try {
      ip('netns', 'del', ns);
    } catch (err) {
      process.stderr.write(`egress internet cleanup: ${String(err)}\n`);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', vh, 'type', 'veth', 'peer', 'name', vn);
    ip('link', 'set', vn, 'netns', ns);
    ip('addr', 'add', `${host}/29`, 'dev', vh);
    ip('link', 'set', vh, 'up');
    ip('-n', ns, 'addr', 'add', `${web}/29`, 'dev', vn);
    ip('-n', ns, 'addr', 'add', `${other}/29`, 'dev', vn);
    ip('-n', ns, 'link', 'set', vn, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Kiln egress test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
    ssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${tlsNames[0]}`, '-keyout', 'server.key', '-out', 'server.csr');
    writeFileSync(join(dir, 'san.ext'), `subjectAltName=${tlsNames.map((n) => `DNS:${n}`).join(',')}\n`);
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.pem');
    const args = [web, other, JSON.stringify(names({ web, other })), join(dir, 'server.pem'), join(dir, 'server.key'), join(dir, 'index'), packageToken];
    servers = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', SERVERS, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      servers?.stdout?.once('data', () => resolve());
      servers?.once('exit', (code) => reject(new Error(`test internet servers exited with ${code}`)));
    });
    return { web, other, host, cidr: `${base}.${octet}/29`, dns: `${web}:53`, caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'), stop };
  } catch (err) {
    stop();
    throw err;
  }
}
