import { CombinedGraphQLErrors } from '@apollo/client';
import { RefreshError } from './auth';

// Small DOM and error helpers shared by main.ts, security.ts and stepup.ts.

export function byTestId<T extends HTMLElement>(id: string): T {
  const el = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!el) throw new Error(`missing element ${id}`);
  return el;
}

/** The error code of a GraphQL error response (extensions.code), or undefined for anything else. */
export function errorCode(err: unknown): string | undefined {
  const code = errorExtension(err, 'code');
  return typeof code === 'string' ? code : undefined;
}

/** One extension of the first GraphQL error (extensions.field, extensions.mfaChallenge, …). */
export function errorExtension(err: unknown, name: string): unknown {
  if (!CombinedGraphQLErrors.is(err)) return undefined;
  return err.errors[0]?.extensions?.[name];
}

/** "CODE (reason or field): message", from the server's errors[].extensions. */
export function describeError(err: unknown): string {
  if (CombinedGraphQLErrors.is(err)) {
    const first = err.errors[0];
    const ext = first?.extensions ?? {};
    const detail = ext.reason ?? ext.field;
    return `${String(ext.code ?? 'ERROR')}${detail ? ` (${String(detail)})` : ''}: ${first?.message ?? ''}`;
  }
  if (err instanceof RefreshError) return `${err.code ?? 'REFRESH_FAILED'}: ${err.message}`;
  // WebAuthn refusals (the user closed the prompt, no passkey for this site, timeout) are DOMExceptions.
  if (err instanceof DOMException) return `PASSKEY_${err.name.replace(/Error$/, '').toUpperCase()}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

const errorBox = () => byTestId<HTMLParagraphElement>('error');

export function showError(err: unknown): void {
  errorBox().textContent = describeError(err);
  errorBox().hidden = false;
}

export function clearError(): void {
  errorBox().textContent = '';
  errorBox().hidden = true;
}

/** Runs a user action: buttons disabled meanwhile, errors shown with their code. */
export async function run(action: () => Promise<void>): Promise<void> {
  const buttons = [...document.querySelectorAll('button')];
  buttons.forEach((b) => (b.disabled = true));
  document.body.setAttribute('aria-busy', 'true');
  clearError();
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    document.body.removeAttribute('aria-busy');
  }
}

/** A table cell with text (never HTML: server data goes into the page with textContent only). */
export function cell(text: string, className?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}
