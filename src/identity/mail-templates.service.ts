import fs from 'node:fs';
import path from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, ConfigError, type AppConfig } from '../config/config';
import { builtInTemplate, fill, placeholdersOf, PRODUCT_NAME, type BuiltInMail, type MailParts } from './mail-layout';

/** What a template may use: every mail knows these; link mails fill `action_url` and `expires_in`. */
export const MAIL_PLACEHOLDERS = ['product_name', 'public_url', 'email', 'action_url', 'expires_in'] as const;
export type MailValues = Partial<Record<(typeof MAIL_PLACEHOLDERS)[number], string>>;

const PART_FILES = { subject: '.subject.txt', text: '.txt', html: '.html' } as const;
const FILE_NAME = /^([a-z][a-z0-9_]*)(\.subject\.txt|\.txt|\.html)$/;

/**
 * Renders every mail from a template: the built-in one, or the operator's from
 * MAIL_TEMPLATES_DIR (`<name>.subject.txt`, `<name>.txt`, `<name>.html`; each file replaces
 * that part only). The directory is read once at start; a file with an unknown name pattern or
 * placeholder stops the start with one line naming MAIL_TEMPLATES_DIR.
 */
@Injectable()
export class MailTemplates {
  private readonly overrides = new Map<string, Partial<MailParts>>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    if (config.MAIL_TEMPLATES_DIR !== undefined) this.load(config.MAIL_TEMPLATES_DIR);
  }

  /** Template names the operator's directory overrides (for the start-up log and tests). */
  overridden(): string[] {
    return [...this.overrides.keys()].sort();
  }

  render(name: string, builtIn: BuiltInMail, values: MailValues & { email: string }): MailParts {
    const template = { ...builtInTemplate(builtIn), ...this.overrides.get(name) };
    const all: Record<string, string> = { product_name: PRODUCT_NAME, public_url: this.config.PUBLIC_URL, ...values };
    return {
      // a subject is one header line, whatever the template holds
      subject: fill(template.subject, all, false).replace(/\s+/g, ' ').trim(),
      text: fill(template.text, all, false),
      html: fill(template.html, all, true),
    };
  }

  private load(dir: string): void {
    for (const file of fs.readdirSync(dir).sort()) {
      if (file.startsWith('.')) continue;
      const match = FILE_NAME.exec(file);
      if (match === null) {
        throw new ConfigError(`config: MAIL_TEMPLATES_DIR: ${file} is not <template>.subject.txt, <template>.txt or <template>.html`);
      }
      const [, name, suffix] = match as unknown as [string, string, string];
      const part = (Object.keys(PART_FILES) as Array<keyof MailParts>).find((key) => PART_FILES[key] === suffix)!;
      const content = fs.readFileSync(path.join(dir, file), 'utf8');
      const unknown = placeholdersOf(content).filter((placeholder) => !(MAIL_PLACEHOLDERS as readonly string[]).includes(placeholder));
      if (unknown.length > 0) {
        throw new ConfigError(
          `config: MAIL_TEMPLATES_DIR: ${file} uses unknown placeholder {{${unknown[0]}}} (known: ${MAIL_PLACEHOLDERS.join(', ')})`,
        );
      }
      this.overrides.set(name, { ...this.overrides.get(name), [part]: content });
    }
  }
}
