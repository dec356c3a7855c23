// The browser side of the passkey ceremonies. The server speaks the WebAuthn JSON forms, so the options
// go through PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON and the
// credential comes back with credential.toJSON(), unchanged. Browsers without those helpers (older
// Safari and Firefox) get the small base64url fallback below, which does the same conversions.

/** The options object itself: accepts both `{publicKey: {...}}` and the bare options. */
function unwrap<T>(options: unknown): T {
  if (typeof options !== 'object' || options === null) throw new Error('the server sent no passkey options');
  const inner = (options as { publicKey?: unknown }).publicKey;
  return (inner ?? options) as T;
}

export function passkeysSupported(): boolean {
  return typeof window.PublicKeyCredential === 'function' && typeof navigator.credentials?.create === 'function';
}

/**
 * Creates a passkey for the options of beginPasskeyRegistration and returns the credential's JSON form
 * for finishPasskeyRegistration.
 */
export async function createPasskey(options: unknown): Promise<unknown> {
  const json = unwrap<PublicKeyCredentialCreationOptionsJSON>(options);
  const publicKey =
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
      ? PublicKeyCredential.parseCreationOptionsFromJSON(json)
      : creationOptionsFromJSON(json);
  const credential = await navigator.credentials.create({ publicKey });
  if (!(credential instanceof PublicKeyCredential)) throw new Error('no passkey was created');
  return credentialToJSON(credential);
}

/**
 * Asks for a passkey (any discoverable credential of this site: no e-mail needed) for the options of
 * beginPasskeyLogin, and returns the assertion's JSON form for finishPasskeyLogin or reauthenticate.
 */
export async function getPasskey(options: unknown): Promise<unknown> {
  const json = unwrap<PublicKeyCredentialRequestOptionsJSON>(options);
  const publicKey =
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function'
      ? PublicKeyCredential.parseRequestOptionsFromJSON(json)
      : requestOptionsFromJSON(json);
  const credential = await navigator.credentials.get({ publicKey, mediation: 'optional' });
  if (!(credential instanceof PublicKeyCredential)) throw new Error('no passkey was chosen');
  return credentialToJSON(credential);
}

function credentialToJSON(credential: PublicKeyCredential): unknown {
  return typeof credential.toJSON === 'function' ? credential.toJSON() : fallbackCredentialJSON(credential);
}

// ---- Fallback for browsers without the JSON helpers ------------------------------------------------

function fromBase64url(s: string): ArrayBuffer {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes.buffer;
}

function toBase64url(buf: ArrayBuffer | ArrayBufferView): string {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function descriptorFromJSON(d: PublicKeyCredentialDescriptorJSON): PublicKeyCredentialDescriptor {
  return { ...d, type: d.type as PublicKeyCredentialType, id: fromBase64url(d.id), transports: d.transports as AuthenticatorTransport[] | undefined };
}

function creationOptionsFromJSON(json: PublicKeyCredentialCreationOptionsJSON): PublicKeyCredentialCreationOptions {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    pubKeyCredParams: json.pubKeyCredParams.map((p) => ({ ...p, type: p.type as PublicKeyCredentialType })),
    excludeCredentials: json.excludeCredentials?.map(descriptorFromJSON),
    attestation: json.attestation as AttestationConveyancePreference | undefined,
  } as PublicKeyCredentialCreationOptions;
}

function requestOptionsFromJSON(json: PublicKeyCredentialRequestOptionsJSON): PublicKeyCredentialRequestOptions {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    allowCredentials: json.allowCredentials?.map(descriptorFromJSON),
    userVerification: json.userVerification as UserVerificationRequirement | undefined,
  } as PublicKeyCredentialRequestOptions;
}

function fallbackCredentialJSON(credential: PublicKeyCredential): unknown {
  const r = credential.response;
  const common = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
  if (r instanceof AuthenticatorAttestationResponse) {
    return {
      ...common,
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        attestationObject: toBase64url(r.attestationObject),
        transports: typeof r.getTransports === 'function' ? r.getTransports() : [],
      },
    };
  }
  if (r instanceof AuthenticatorAssertionResponse) {
    return {
      ...common,
      response: {
        clientDataJSON: toBase64url(r.clientDataJSON),
        authenticatorData: toBase64url(r.authenticatorData),
        signature: toBase64url(r.signature),
        userHandle: r.userHandle ? toBase64url(r.userHandle) : undefined,
      },
    };
  }
  throw new Error('unexpected WebAuthn response');
}
