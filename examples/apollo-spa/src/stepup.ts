import { client } from './apollo';
import { setAccessToken } from './auth';
import { beginPasskeyLoginMutation, reauthenticateMutation } from './operations';
import { byTestId, describeError, errorCode } from './ui';
import { getPasskey, passkeysSupported } from './webauthn';

// Step-up authentication in one place. The fields marked @auth(fresh: true) in the schema fail with
// REAUTHENTICATION_REQUIRED when the session's last sign-in is older than the server's REAUTH_MAX_AGE.
// withStepUp wraps such a call: on that error it opens the "Confirm it's you" dialog (password, plus a
// code when TOTP is on; or a passkey), calls reauthenticate, stores the fresh access token (same
// session, new auth_time) and retries the call once.

/** The user closed the dialog: the operation is abandoned. */
export class StepUpCancelled extends Error {
  constructor() {
    super('Cancelled: the action needs you to confirm it is you.');
    this.name = 'StepUpCancelled';
  }
}

let needsCode = false;

/** Whether the dialog asks for a TOTP or recovery code with the password (me.totpEnabled). */
export function setStepUpNeedsCode(totpEnabled: boolean): void {
  needsCode = totpEnabled;
}

/** Runs `operation`; if it fails with REAUTHENTICATION_REQUIRED, asks the user to confirm it's them and runs it once more. */
export async function withStepUp<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (errorCode(err) !== 'REAUTHENTICATION_REQUIRED') throw err;
    await confirmItsYou();
    return operation();
  }
}

const ui = {
  dialog: byTestId<HTMLDialogElement>('reauth-dialog'),
  form: byTestId<HTMLFormElement>('reauth-form'),
  password: byTestId<HTMLInputElement>('reauth-password-input'),
  codeLabel: byTestId<HTMLLabelElement>('reauth-code-label'),
  code: byTestId<HTMLInputElement>('reauth-code-input'),
  error: byTestId<HTMLParagraphElement>('reauth-error'),
  passkey: byTestId<HTMLButtonElement>('reauth-passkey-button'),
  cancel: byTestId<HTMLButtonElement>('reauth-cancel-button'),
};

// The dialog that is open, shared by every operation that needs it meanwhile (like the refresh).
let open: Promise<void> | null = null;

function confirmItsYou(): Promise<void> {
  open ??= showDialog().finally(() => {
    open = null;
  });
  return open;
}

function showDialog(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const listeners = new AbortController();
    const { signal } = listeners;
    const controls = [...ui.dialog.querySelectorAll<HTMLButtonElement | HTMLInputElement>('button, input')];
    // run() marked the page busy and disabled every button; the dialog waits for the user, so it is not.
    const busy = document.body.hasAttribute('aria-busy');
    const setBusy = (on: boolean) => {
      controls.forEach((c) => (c.disabled = on));
      ui.passkey.disabled = on || !passkeysSupported();
      if (on) document.body.setAttribute('aria-busy', 'true');
      else document.body.removeAttribute('aria-busy');
    };
    const finish = (err?: Error) => {
      listeners.abort();
      ui.password.value = '';
      ui.code.value = '';
      ui.error.hidden = true;
      ui.dialog.close();
      if (busy) document.body.setAttribute('aria-busy', 'true');
      if (err) reject(err);
      else resolve();
    };
    const showDialogError = (err: unknown) => {
      // reauthenticate says MFA_REQUIRED when TOTP is on and no code was given: ask for it.
      if (errorCode(err) === 'MFA_REQUIRED') {
        ui.codeLabel.hidden = false;
        ui.code.required = true;
      }
      ui.error.textContent = describeError(err);
      ui.error.hidden = false;
    };
    /** Sends one reauthenticate; on success the dialog closes and the operation is retried. */
    const attempt = async (variables: () => Promise<Parameters<typeof reauth>[0]>) => {
      setBusy(true);
      ui.error.hidden = true;
      try {
        await reauth(await variables());
        finish();
      } catch (err) {
        showDialogError(err);
        setBusy(false);
      }
    };

    ui.form.addEventListener(
      'submit',
      (event) => {
        event.preventDefault();
        void attempt(async () => ({ password: ui.password.value, code: ui.codeLabel.hidden ? null : ui.code.value || null }));
      },
      { signal },
    );
    ui.passkey.addEventListener(
      'click',
      () =>
        void attempt(async () => {
          const { data } = await client.mutate({ mutation: beginPasskeyLoginMutation });
          if (!data) throw new Error('empty response');
          const credential = await getPasskey(data.beginPasskeyLogin.options);
          return { challengeId: data.beginPasskeyLogin.challengeId, credential };
        }),
      { signal },
    );
    ui.cancel.addEventListener('click', () => finish(new StepUpCancelled()), { signal });
    // Escape closes a modal dialog: the same as Cancel.
    ui.dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      finish(new StepUpCancelled());
    }, { signal });

    ui.codeLabel.hidden = !needsCode;
    ui.code.required = needsCode;
    ui.error.hidden = true;
    setBusy(false);
    ui.dialog.showModal();
    ui.password.focus();
  });
}

async function reauth(variables: { password?: string | null; code?: string | null; challengeId?: string; credential?: unknown }): Promise<void> {
  const { data } = await client.mutate({ mutation: reauthenticateMutation, variables });
  if (!data) throw new Error('empty response');
  setAccessToken(data.reauthenticate.accessToken); // same session, new auth_time
}
