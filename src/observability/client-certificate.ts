import fs from 'node:fs';
import type http from 'node:http';
import type https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import proxyAddr from '@fastify/proxy-addr';
import { firstHeader } from '../common/header-value';
import type { AppConfig } from '../config/config';

/** A certificate's subject on one line, e.g. `O=Example, CN=orders-service`. */
export function subjectLine(certificate: X509Certificate): string {
  return certificate.subject.split('\n').join(', ');
}

/** RFC 9440 `Client-Cert: :<base64 DER>:` → the certificate, or undefined when malformed. */
export function parseClientCertHeader(value: string | string[] | undefined): X509Certificate | undefined {
  const text = firstHeader(value);
  const match = text === undefined ? null : /^\s*:([A-Za-z0-9+/]+={0,2}):\s*$/.exec(text);
  if (match === null) return undefined;
  try {
    return new X509Certificate(Buffer.from(match[1]!, 'base64'));
  } catch {
    return undefined;
  }
}

/** The subject of the client certificate that verified on our own TLS listener (TLS_CLIENT_CA_FILE), if any. */
export function verifiedPeerSubject(socket: object): string | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.encrypted !== true || tls.authorized !== true) return undefined;
  const raw = tls.getPeerCertificate?.()?.raw;
  return raw === undefined || raw.length === 0 ? undefined : subjectLine(new X509Certificate(raw));
}

/**
 * CONTRACT §13: the client certificate's subject for the log line and the policy hook. A
 * certificate verified on our own TLS listener wins; otherwise the edge's verified certificate
 * in `Client-Cert`, believed only when the connection comes from a TRUST_PROXY address.
 */
export function clientCertificateReader(trustProxy: boolean | string[]): (request: http.IncomingMessage) => string | undefined {
  const trusted: (address: string) => boolean =
    trustProxy === false
      ? () => false
      : trustProxy === true
        ? () => true
        : (
            (trust) => (address: string) =>
              trust(address, 0)
          )(proxyAddr.compile(trustProxy));
  return (request) => {
    const verified = verifiedPeerSubject(request.socket);
    if (verified !== undefined) return verified;
    const header = request.headers['client-cert'];
    if (header === undefined || !trusted(request.socket.remoteAddress ?? '')) return undefined;
    const certificate = parseClientCertHeader(header);
    return certificate === undefined ? undefined : subjectLine(certificate);
  };
}

/**
 * With TLS_CERT_FILE/TLS_KEY_FILE Gatehouse serves HTTPS itself; TLS_CLIENT_CA_FILE asks for
 * client certificates (TLS_CLIENT_CERT_REQUIRED: a connection without one fails the handshake).
 */
export function httpsServerOptions(config: AppConfig): https.ServerOptions | undefined {
  if (config.TLS_CERT_FILE === undefined || config.TLS_KEY_FILE === undefined) return undefined;
  const options: https.ServerOptions = { cert: fs.readFileSync(config.TLS_CERT_FILE), key: fs.readFileSync(config.TLS_KEY_FILE) };
  if (config.TLS_CLIENT_CA_FILE !== undefined) {
    Object.assign(options, {
      ca: fs.readFileSync(config.TLS_CLIENT_CA_FILE),
      requestCert: true,
      rejectUnauthorized: config.TLS_CLIENT_CERT_REQUIRED,
    });
  }
  return options;
}

/**
 * Optional client certificates: Node accepts a presented certificate that does not verify
 * when none is required, so such a connection is closed here, before any request is read
 * (CONTRACT §13: a presented certificate that does not verify fails the handshake).
 */
export function refuseUnverifiedClientCertificates(server: TlsServer): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.authorized) return;
    const presented = socket.getPeerCertificate();
    if (presented !== undefined && Object.keys(presented).length > 0) socket.destroy();
  });
}
