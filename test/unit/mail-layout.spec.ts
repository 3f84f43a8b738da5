import { describe, expect, it } from 'vitest';
import { builtInTemplate, fill, placeholdersOf } from '../../src/identity/mail-layout';

describe('mail templates', () => {
  const mail = builtInTemplate({
    subject: 'Reset <your> password',
    paragraphs: ['Someone asked for {{email}} & more.', 'Second\nline'],
    action: 'Choose a new password',
    notYou: 'If this was not you, ignore this message.',
  });

  it('builds text and HTML that carry the product, the action, the expiry and the "not you" advice', () => {
    const values = {
      product_name: 'Gatehouse',
      email: 'a@example.com',
      action_url: 'https://x.example/r?t=abc&l=fr',
      expires_in: '30 minutes',
    };
    const text = fill(mail.text, values, false);
    expect(text).toBe(
      'Someone asked for a@example.com & more.\n\nSecond\nline\n\nChoose a new password:\nhttps://x.example/r?t=abc&l=fr\n\nThis link is valid for 30 minutes and works once.\n\nIf this was not you, ignore this message.\n\n— Gatehouse\n',
    );
    const html = fill(mail.html, values, true);
    expect(html).toContain('<title>Reset &lt;your&gt; password</title>');
    expect(html).toContain('Someone asked for a@example.com &amp; more.');
    expect(html).toContain('Second<br>line');
    expect(html).toContain('href="https://x.example/r?t=abc&amp;l=fr"');
    expect(html).toContain('valid for 30 minutes');
    expect(html).toContain('If this was not you, ignore this message.');
    expect(html).not.toMatch(/<img|<link|<script|src=/);
  });

  it('escapes every value in HTML, so a value cannot add markup', () => {
    expect(fill('<p>{{email}}</p>', { email: '"><script>alert(1)</script>' }, true)).toBe(
      '<p>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>',
    );
    expect(fill('{{ email }} / {{missing}}', { email: 'a<b' }, false)).toBe('a<b / ');
  });

  it('lists the placeholders a template uses', () => {
    expect(placeholdersOf('Hi {{email}}, see {{ action_url }} and {{first_name}}; {not} {{Bad}}')).toEqual([
      'email',
      'action_url',
      'first_name',
    ]);
  });
});
