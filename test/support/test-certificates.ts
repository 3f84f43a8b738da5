import { execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';

export interface TestCertificates {
  ca: string;
  cert: string;
  key: string;
}

/**
 * A throw-away CA and a server certificate signed by it, made with openssl in `dir`
 * (`ca.pem`, `server.pem`, `server.key`; P-256, valid 2 days). `altNames` is the
 * subjectAltName list, e.g. `IP:127.0.0.1,DNS:localhost`.
 */
export function makeTestCertificates(dir: string, altNames: string): TestCertificates {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=gatehouse-test-ca');
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'san.ext'), `subjectAltName=${altNames}\n`);
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

export interface TestCa {
  cert: string;
  key: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A throw-away CA `<name>.pem` / `<name>.key` in `dir`. */
export function makeTestCa(dir: string, name: string): TestCa {
  execFileSync('openssl', ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], {
    cwd: dir,
    stdio: 'ignore',
  });
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}

/**
 * A certificate `<name>.pem` / `<name>.key` signed by `ca`, with CN `name`; `altNames` (e.g.
 * `IP:127.0.0.1`) for a server, none for a client certificate.
 */
export function makeSignedCertificate(dir: string, ca: TestCa, name: string, altNames?: string): { cert: string; key: string } {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    altNames === undefined ? 'extendedKeyUsage=clientAuth\n' : `subjectAltName=${altNames}\nextendedKeyUsage=serverAuth\n`,
  );
  run(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    ext,
  );
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}
