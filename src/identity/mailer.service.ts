import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  /** the HTML alternative (multipart/alternative with `text`) */
  html?: string;
}

/**
 * Sends mail over SMTP_URL, or writes `.eml` files to DATA_DIR/outbox when unset.
 * Callers send after their transaction commits; a failed send is logged and never fails the request.
 */
@Injectable()
export class MailerService {
  private readonly transport: Transporter;
  private readonly outbox: string | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    if (config.SMTP_URL !== undefined) {
      this.transport = nodemailer.createTransport(config.SMTP_URL);
    } else {
      this.outbox = path.join(config.dataDir, 'outbox');
      this.transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    }
  }

  /** Fire and forget: resolves at once; delivery happens in the background. */
  sendLater(message: MailMessage): void {
    void this.send(message).catch((error: unknown) => {
      // the message body holds a token, so only the failure's kind is logged
      this.logger.error({ err_message: error instanceof Error ? error.message : 'unknown', subject: message.subject }, 'mail not sent');
    });
  }

  async send(message: MailMessage): Promise<void> {
    const info = (await this.transport.sendMail({ from: this.config.MAIL_FROM, ...message })) as { message?: Buffer };
    if (this.outbox !== undefined && info.message !== undefined) {
      await fs.mkdir(this.outbox, { recursive: true });
      const file = path.join(this.outbox, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}.eml`);
      await fs.writeFile(file, info.message, { mode: 0o600 });
    }
    this.logger.info({ subject: message.subject }, 'mail sent');
  }
}
