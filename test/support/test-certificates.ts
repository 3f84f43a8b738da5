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
