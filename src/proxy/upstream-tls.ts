import fs from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, ConfigError, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';

/** PEM material for upstream mTLS: the CA servers must chain to, our client certificate and its key. */
export interface UpstreamTlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** built once per material, so a new connection does not parse the PEMs again */
  secureContext: SecureContext;
}

/** How often the files are looked at (stat only); a rotated certificate is in use within about this long. */
const WATCH_INTERVAL_MS = 500;

/**
 * CONTRACT §13: mTLS to every upstream when UPSTREAM_TLS_* are set. Holds the current material,
 * re-reads it when one of the files changes (rotation without restart; a half-written or
 * mismatched set is refused and the last good one kept) and tells the clients, which then
 * open new connections with it. Without the variables everything stays plaintext.
 */
@Injectable()
export class UpstreamTls implements OnApplicationShutdown {
  private current: UpstreamTlsMaterial | undefined;
  private readonly listeners: Array<() => void> = [];
  private readonly files: string[];

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    const { UPSTREAM_TLS_CA_FILE: ca, UPSTREAM_TLS_CERT_FILE: cert, UPSTREAM_TLS_KEY_FILE: key } = config;
    this.files = ca !== undefined && cert !== undefined && key !== undefined ? [ca, cert, key] : [];
    if (this.files.length === 0) return;
    this.current = this.read();
    if (this.current === undefined) {
      throw new ConfigError('config: UPSTREAM_TLS_CERT_FILE: UPSTREAM_TLS_* do not hold a usable CA, certificate and matching key');
    }
    for (const file of this.files) {
      fs.watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, () => this.reload());
    }
  }

  onApplicationShutdown(): void {
    for (const file of this.files) fs.unwatchFile(file);
  }

  get enabled(): boolean {
    return this.files.length > 0;
  }

  /** The material for new connections, or undefined when upstreams are plaintext. */
  material(): UpstreamTlsMaterial | undefined {
    return this.current;
  }

  /** `http`/`https` or `ws`/`wss` for an endpoint URL. */
  scheme(plain: 'http' | 'ws'): string {
    return this.enabled ? `${plain}s` : plain;
  }

  /** Called after new material is in force (connections opened before keep their old one until closed). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private reload(): void {
    const next = this.read();
    if (next === undefined) return;
    const previous = this.current;
    if (previous !== undefined && previous.ca.equals(next.ca) && previous.cert.equals(next.cert) && previous.key.equals(next.key)) return;
    this.current = next;
    this.logger.info({ subject: new X509Certificate(next.cert).subject.replace(/\n/g, ', ') }, 'upstream TLS material reloaded');
    for (const listener of this.listeners) listener();
  }

  /** Reads and checks the three files; undefined (and a warning) when they are not a usable set yet. */
  private read(): UpstreamTlsMaterial | undefined {
    try {
      const [ca, cert, key] = this.files.map((file) => fs.readFileSync(file)) as [Buffer, Buffer, Buffer];
      new X509Certificate(ca);
      const certificate = new X509Certificate(cert);
      // a certificate written before its key (or the other way round) is not a usable pair yet
      if (!certificate.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
      return { ca, cert, key, secureContext: createSecureContext({ ca, cert, key }) };
    } catch (error) {
      this.logger.warn(
        { reason: error instanceof Error ? error.message : String(error) },
        'upstream TLS files not usable; keeping the last good ones',
      );
      return undefined;
    }
  }
}

/** Channel credentials for an aggregate endpoint: mTLS with the current material, else insecure. */
export function upstreamGrpcCredentials(tls: UpstreamTls): grpc.ChannelCredentials {
  const material = tls.material();
  return material === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(material.ca, material.key, material.cert);
}
