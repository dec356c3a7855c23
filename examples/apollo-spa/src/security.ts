import { toDataURL } from 'qrcode';
import { client } from './apollo';
import type { PasskeysQuery } from './gql/graphql';
import {
  beginPasskeyRegistrationMutation,
  confirmTotpEnrollmentMutation,
  deletePasskeyMutation,
  disableTotpMutation,
  finishPasskeyRegistrationMutation,
  regenerateRecoveryCodesMutation,
  startTotpEnrollmentMutation,
} from './operations';
import { setStepUpNeedsCode, withStepUp } from './stepup';
import { byTestId, cell, run } from './ui';
import { createPasskey, passkeysSupported } from './webauthn';

// The signed-in view's "Security" part: TOTP (enrolment with a QR code, recovery codes, disable) and
// passkeys (add, list, delete). The fresh-only mutations go through withStepUp (stepup.ts).

const ui = {
  status: byTestId<HTMLParagraphElement>('status'),
  totpState: byTestId<HTMLElement>('totp-state'),
  enable: byTestId<HTMLButtonElement>('totp-enable-button'),
  disable: byTestId<HTMLButtonElement>('totp-disable-button'),
  regenerate: byTestId<HTMLButtonElement>('recovery-regenerate-button'),
  enroll: byTestId<HTMLElement>('totp-enroll'),
  qr: byTestId<HTMLImageElement>('totp-qr'),
  secret: byTestId<HTMLElement>('totp-secret'),
  confirmForm: byTestId<HTMLFormElement>('totp-confirm-form'),
  confirmCode: byTestId<HTMLInputElement>('totp-code-input'),
  enrollCancel: byTestId<HTMLButtonElement>('totp-enroll-cancel-button'),
  codeForm: byTestId<HTMLFormElement>('totp-action-form'),
  codePrompt: byTestId<HTMLElement>('totp-action-prompt'),
  code: byTestId<HTMLInputElement>('totp-action-code-input'),
  codeCancel: byTestId<HTMLButtonElement>('totp-action-cancel-button'),
  recovery: byTestId<HTMLElement>('recovery-codes'),
  recoveryList: byTestId<HTMLOListElement>('recovery-code-list'),
  recoverySaved: byTestId<HTMLButtonElement>('recovery-saved-button'),
  passkeys: byTestId<HTMLTableSectionElement>('passkeys'),
  passkeyForm: byTestId<HTMLFormElement>('passkey-add-form'),
  passkeyName: byTestId<HTMLInputElement>('passkey-name-input'),
  passkeyUnsupported: byTestId<HTMLElement>('passkey-unsupported'),
};

let reload: () => Promise<void> = async () => {};
let codeAction: 'disable' | 'regenerate' = 'disable';

/** Shows the TOTP state and the passkeys (called by loadAccount). */
export function renderSecurity(totpEnabled: boolean, passkeys: PasskeysQuery['passkeys']): void {
  setStepUpNeedsCode(totpEnabled);
  ui.totpState.textContent = totpEnabled
    ? '✔ Two-factor authentication is on: logins ask for a code from your authenticator app.'
    : 'Two-factor authentication is off.';
  ui.totpState.dataset.enabled = String(totpEnabled);
  ui.totpState.className = totpEnabled ? 'verified' : 'unverified';
  ui.enable.hidden = totpEnabled || !ui.enroll.hidden;
  ui.disable.hidden = !totpEnabled;
  ui.regenerate.hidden = !totpEnabled;
  if (!totpEnabled) ui.codeForm.hidden = true;
  renderPasskeys(passkeys);
}

/** Forgets what the section showed (logout): the secret, the QR code, recovery codes. */
export function resetSecurity(): void {
  setStepUpNeedsCode(false);
  closeEnrollment();
  hideRecoveryCodes();
  ui.codeForm.hidden = true;
  ui.code.value = '';
  ui.passkeys.replaceChildren();
}

function renderPasskeys(passkeys: PasskeysQuery['passkeys']): void {
  ui.passkeys.replaceChildren(
    ...passkeys.map((p) => {
      const row = document.createElement('tr');
      row.dataset.testid = 'passkey-row';
      const action = document.createElement('td');
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'danger';
      remove.dataset.testid = 'passkey-delete-button';
      remove.textContent = 'Delete';
      remove.addEventListener('click', () => run(() => deletePasskey(p.id)));
      action.append(remove);
      row.append(
        cell(p.name, 'passkey-name'),
        cell(new Date(p.createdAt).toLocaleString()),
        cell(p.lastUsedAt ? new Date(p.lastUsedAt).toLocaleString() : 'never', 'passkey-last-used'),
        action,
      );
      return row;
    }),
  );
}

function closeEnrollment(): void {
  ui.enroll.hidden = true;
  ui.qr.removeAttribute('src');
  ui.secret.textContent = '';
  ui.confirmCode.value = '';
}

function showRecoveryCodes(codes: string[]): void {
  ui.recoveryList.replaceChildren(
    ...codes.map((c) => {
      const li = document.createElement('li');
      li.dataset.testid = 'recovery-code';
      li.textContent = c;
      return li;
    }),
  );
  ui.recovery.hidden = false;
}

function hideRecoveryCodes(): void {
  ui.recoveryList.replaceChildren();
  ui.recovery.hidden = true;
}

async function startEnrollment(): Promise<void> {
  const { data } = await withStepUp(() => client.mutate({ mutation: startTotpEnrollmentMutation }));
  if (!data) throw new Error('empty response');
  const { secret, otpauthUri } = data.startTotpEnrollment;
  // Drawn here, in the page: the secret never goes to a QR-code web service.
  ui.qr.src = await toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 2, width: 200 });
  ui.secret.textContent = secret;
  hideRecoveryCodes();
  ui.enroll.hidden = false;
  ui.enable.hidden = true;
  ui.confirmCode.focus();
}

async function confirmEnrollment(): Promise<void> {
  const { data } = await client.mutate({ mutation: confirmTotpEnrollmentMutation, variables: { code: ui.confirmCode.value.trim() } });
  if (!data) throw new Error('empty response');
  closeEnrollment();
  // Shown before anything else can fail: the server never returns these codes again.
  showRecoveryCodes(data.confirmTotpEnrollment);
  await reload();
  ui.status.textContent = 'Two-factor authentication is on. Save your recovery codes.';
}

async function submitCode(): Promise<void> {
  const code = ui.code.value.trim();
  if (codeAction === 'disable') {
    await withStepUp(() => client.mutate({ mutation: disableTotpMutation, variables: { code } }));
    ui.codeForm.hidden = true;
    ui.code.value = '';
    hideRecoveryCodes();
    await reload();
    ui.status.textContent = 'Two-factor authentication is off.';
    return;
  }
  const { data } = await withStepUp(() => client.mutate({ mutation: regenerateRecoveryCodesMutation, variables: { code } }));
  if (!data) throw new Error('empty response');
  ui.codeForm.hidden = true;
  ui.code.value = '';
  showRecoveryCodes(data.regenerateRecoveryCodes);
  ui.status.textContent = 'New recovery codes: the old ones no longer work.';
}

function askForCode(action: 'disable' | 'regenerate'): void {
  codeAction = action;
  ui.codePrompt.textContent =
    action === 'disable'
      ? 'To turn two-factor authentication off, enter a code from your app or a recovery code.'
      : 'To get new recovery codes, enter a code from your app or a recovery code.';
  ui.code.value = '';
  ui.codeForm.dataset.action = action;
  ui.codeForm.hidden = false;
  ui.code.focus();
}

async function addPasskey(): Promise<void> {
  const { data } = await withStepUp(() => client.mutate({ mutation: beginPasskeyRegistrationMutation }));
  if (!data) throw new Error('empty response');
  const credential = await createPasskey(data.beginPasskeyRegistration);
  const name = ui.passkeyName.value.trim() || null;
  const finished = await client.mutate({ mutation: finishPasskeyRegistrationMutation, variables: { credential, name } });
  if (!finished.data) throw new Error('empty response');
  ui.passkeyName.value = '';
  await reload();
  ui.status.textContent = `Passkey "${finished.data.finishPasskeyRegistration.name}" added.`;
}

async function deletePasskey(id: string): Promise<void> {
  const { data } = await withStepUp(() => client.mutate({ mutation: deletePasskeyMutation, variables: { id } }));
  if (!data?.deletePasskey) throw new Error('That passkey was not found (already deleted?).');
  await reload();
  ui.status.textContent = 'Passkey deleted.';
}

/** Wires the section's controls; `reloadAccount` shows the account again after a change. */
export function initSecurity(reloadAccount: () => Promise<void>): void {
  reload = reloadAccount;
  const supported = passkeysSupported();
  ui.passkeyUnsupported.hidden = supported;
  ui.passkeyForm.hidden = !supported;

  ui.enable.addEventListener('click', () => void run(startEnrollment));
  ui.confirmForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void run(confirmEnrollment);
  });
  ui.enrollCancel.addEventListener('click', () => {
    closeEnrollment();
    ui.enable.hidden = false;
  });
  ui.recoverySaved.addEventListener('click', hideRecoveryCodes);
  ui.disable.addEventListener('click', () => askForCode('disable'));
  ui.regenerate.addEventListener('click', () => askForCode('regenerate'));
  ui.codeForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void run(submitCode);
  });
  ui.codeCancel.addEventListener('click', () => {
    ui.codeForm.hidden = true;
    ui.code.value = '';
  });
  ui.passkeyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    void run(addPasskey);
  });
}
