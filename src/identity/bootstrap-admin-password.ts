import { ConfigError, type AppConfig } from '../config/config';
import { passwordProblem } from './password-policy';

/**
 * The bootstrap admin's password follows the same policy as every other password (CONTRACT §3:
 * 15..256 characters, not a common password, not containing the email's local part). Checked
 * before anything starts, in every environment: a weak one is a configuration error (exit 78),
 * named without echoing the value.
 */
export function assertBootstrapAdminPassword(config: Pick<AppConfig, 'BOOTSTRAP_ADMIN_EMAIL' | 'BOOTSTRAP_ADMIN_PASSWORD'>): void {
  if (config.BOOTSTRAP_ADMIN_PASSWORD === undefined) return;
  const problem = passwordProblem(config.BOOTSTRAP_ADMIN_PASSWORD, config.BOOTSTRAP_ADMIN_EMAIL);
  if (problem !== undefined) throw new ConfigError(`config: BOOTSTRAP_ADMIN_PASSWORD: ${problem}`);
}
