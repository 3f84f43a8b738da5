/**
 * Gatehouse's built-in mails, as templates: the same `{{name}}` syntax operators use in
 * MAIL_TEMPLATES_DIR, filled in by MailTemplates. Every mail says which product it comes from,
 * what happened or what the link does, how long the link is valid, and what to do if it was
 * not you.
 */
export const PRODUCT_NAME = 'Gatehouse';

export interface BuiltInMail {
  subject: string;
  /** paragraphs, plain text (may hold `{{placeholders}}`) */
  paragraphs: string[];
  /** a link mail: the button / line label; the URL is `{{action_url}}`, valid `{{expires_in}}` */
  action?: string;
  /** "if this was not you" advice; empty when a paragraph already says it */
  notYou: string;
}

export interface MailParts {
  subject: string;
  text: string;
  html: string;
}

const escapeHtml = (value: string) =>
  value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** The built-in text and HTML of a mail; placeholders stay for the renderer. */
export function builtInTemplate(mail: BuiltInMail): MailParts {
  const text = [
    ...mail.paragraphs,
    ...(mail.action !== undefined ? [`${mail.action}:\n{{action_url}}`, 'This link is valid for {{expires_in}} and works once.'] : []),
    ...(mail.notYou !== '' ? [mail.notYou] : []),
    '— {{product_name}}',
  ].join('\n\n');
  // literal text is escaped here; placeholder values are escaped when they are filled in
  const paragraph = (content: string) => `<p style="margin:0 0 16px">${escapeHtml(content).replace(/\n/g, '<br>')}</p>`;
  const action =
    mail.action === undefined
      ? ''
      : `<p style="margin:24px 0"><a href="{{action_url}}" style="background:#1f4e99;color:#ffffff;padding:12px 20px;border-radius:4px;text-decoration:none;display:inline-block">${escapeHtml(mail.action)}</a></p>
<p style="margin:0 0 16px;font-size:14px;color:#444444">This link is valid for {{expires_in}} and works once. If the button does not work, open this address:<br><span style="word-break:break-all">{{action_url}}</span></p>`;
  const html = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(mail.subject)}</title></head>
<body style="margin:0;padding:24px;background:#f4f4f4;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a">
<div style="max-width:560px;margin:0 auto;background:#ffffff;padding:24px;border-radius:6px">
<p style="margin:0 0 24px;font-weight:bold;font-size:18px">{{product_name}}</p>
${mail.paragraphs.map(paragraph).join('\n')}
${action}
${mail.notYou !== '' ? paragraph(mail.notYou) : ''}
</div>
</body>
</html>
`;
  return { subject: mail.subject, text: `${text}\n`, html };
}

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

/** The placeholder names a template uses. */
export function placeholdersOf(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((match) => match[1]!);
}

/** Fills `{{name}}` placeholders; in HTML every value is escaped. Unknown names were refused at load. */
export function fill(template: string, values: Record<string, string>, html: boolean): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = values[name] ?? '';
    return html ? escapeHtml(value) : value;
  });
}
