import fs from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { ConfigError, type AppConfig } from '../config/config';

type NatsSecurity = Pick<ConnectionOptions, 'user' | 'pass' | 'authenticator' | 'tls'>;

/**
 * Credentials and TLS for the NATS connection (CONTRACT §13): a `.creds` file (JWT + nkey seed,
 * NATS decentralised auth) or user + password, and a CA that the server's certificate must
 * chain to. Read once at start; a file that cannot be read is bad configuration.
 */
export function natsSecurity(
  config: Pick<AppConfig, 'NATS_CREDS_FILE' | 'NATS_USER' | 'NATS_PASSWORD' | 'NATS_TLS_CA_FILE'>,
): NatsSecurity {
  const security: NatsSecurity = {};
  if (config.NATS_CREDS_FILE !== undefined) {
    security.authenticator = credsAuthenticator(readFile('NATS_CREDS_FILE', config.NATS_CREDS_FILE));
  } else if (config.NATS_USER !== undefined) {
    security.user = config.NATS_USER;
    security.pass = config.NATS_PASSWORD;
  }
  if (config.NATS_TLS_CA_FILE !== undefined) {
    // an object (even with only the CA) makes the client refuse a server that does not speak TLS
    security.tls = { ca: readFile('NATS_TLS_CA_FILE', config.NATS_TLS_CA_FILE).toString('utf8') };
  }
  return security;
}

function readFile(variable: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    throw new ConfigError(`config: ${variable}: cannot read ${file}`);
  }
}
