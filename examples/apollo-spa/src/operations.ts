import { graphql } from './gql';

// Every operation the app sends. `npm run codegen` reads these and generates their types in src/gql/,
// so `data` and `variables` below are typed from ../../schema.graphqls.

export const meQuery = graphql(`
  query Me {
    me {
      id
      email
      role
      createdAt
      emailVerified
      totpEnabled
    }
  }
`);

export const sessionsQuery = graphql(`
  query Sessions {
    sessions {
      id
      createdAt
      lastUsedAt
      expiresAt
      userAgent
      ip
      current
    }
  }
`);

// In cookie mode the server puts the refresh token in an HttpOnly cookie and returns refreshToken: null,
// so the app never asks for it.
export const loginMutation = graphql(`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      accessToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

export const registerMutation = graphql(`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      accessToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

// No argument: the server reads the refresh token from the cookie and sets a new one.
export const refreshTokenMutation = graphql(`
  mutation RefreshToken {
    refreshToken {
      accessToken
      expiresIn
    }
  }
`);

// No argument: ends the cookie's session and clears the cookie.
export const logoutMutation = graphql(`
  mutation Logout {
    logout
  }
`);

export const logoutAllMutation = graphql(`
  mutation LogoutAll {
    logoutAll
  }
`);

// Over the WebSocket (apollo.ts sends subscriptions through GraphQLWsLink): events about the user's own
// sessions. `current` is true when the event is about the session this page is signed in with.
export const sessionEventsSubscription = graphql(`
  subscription SessionEvents {
    sessionEvents {
      type
      sessionId
      current
      at
    }
  }
`);

export const revokeSessionMutation = graphql(`
  mutation RevokeSession($id: ID!) {
    revokeSession(id: $id)
  }
`);

// Always true, for known and unknown addresses alike: the page shows one neutral confirmation.
export const requestPasswordResetMutation = graphql(`
  mutation RequestPasswordReset($email: String!) {
    requestPasswordReset(email: $email)
  }
`);

// Like login: in cookie mode the new session's refresh token arrives as the HttpOnly cookie.
export const resetPasswordMutation = graphql(`
  mutation ResetPassword($input: ResetPasswordInput!) {
    resetPassword(input: $input) {
      accessToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

export const requestEmailVerificationMutation = graphql(`
  mutation RequestEmailVerification {
    requestEmailVerification
  }
`);

// Public: the link works in any browser, signed in or not.
export const verifyEmailMutation = graphql(`
  mutation VerifyEmail($token: String!) {
    verifyEmail(token: $token) {
      id
      email
      emailVerified
    }
  }
`);

// ---- Second factors and passkeys ------------------------------------------------------------------
// The mutations marked @auth(fresh: true) in the schema (startTotpEnrollment, disableTotp,
// regenerateRecoveryCodes, beginPasskeyRegistration, deletePasskey) may fail with
// REAUTHENTICATION_REQUIRED: main.ts sends them through withStepUp, which asks the user to confirm
// it's them (reauthenticate) and retries once.

export const passkeysQuery = graphql(`
  query Passkeys {
    passkeys {
      id
      name
      createdAt
      lastUsedAt
    }
  }
`);

export const startTotpEnrollmentMutation = graphql(`
  mutation StartTotpEnrollment {
    startTotpEnrollment {
      secret
      otpauthUri
    }
  }
`);

// The 10 recovery codes come back only here (and from regenerateRecoveryCodes): shown once, never stored.
export const confirmTotpEnrollmentMutation = graphql(`
  mutation ConfirmTotpEnrollment($code: String!) {
    confirmTotpEnrollment(code: $code)
  }
`);

export const disableTotpMutation = graphql(`
  mutation DisableTotp($code: String!) {
    disableTotp(code: $code)
  }
`);

export const regenerateRecoveryCodesMutation = graphql(`
  mutation RegenerateRecoveryCodes($code: String!) {
    regenerateRecoveryCodes(code: $code)
  }
`);

// The second step of a login (or of resetPassword) that failed with MFA_REQUIRED: the challenge is the
// error's extensions.mfaChallenge. Like login, the refresh token arrives as the HttpOnly cookie.
export const verifyMfaMutation = graphql(`
  mutation VerifyMfa($challenge: String!, $code: String!) {
    verifyMfa(challenge: $challenge, code: $code) {
      accessToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

// Step-up: the password (plus a code when TOTP is on), or a passkey assertion. Returns a fresh access
// token for the same session, with a new auth_time.
export const reauthenticateMutation = graphql(`
  mutation Reauthenticate($password: String, $code: String, $challengeId: ID, $credential: JSON) {
    reauthenticate(password: $password, code: $code, challengeId: $challengeId, credential: $credential) {
      accessToken
      expiresIn
    }
  }
`);

// PublicKeyCredentialCreationOptions in their JSON form (for PublicKeyCredential.parseCreationOptionsFromJSON).
export const beginPasskeyRegistrationMutation = graphql(`
  mutation BeginPasskeyRegistration {
    beginPasskeyRegistration
  }
`);

export const finishPasskeyRegistrationMutation = graphql(`
  mutation FinishPasskeyRegistration($credential: JSON!, $name: String) {
    finishPasskeyRegistration(credential: $credential, name: $name) {
      id
      name
      createdAt
      lastUsedAt
    }
  }
`);

export const beginPasskeyLoginMutation = graphql(`
  mutation BeginPasskeyLogin {
    beginPasskeyLogin {
      challengeId
      options
    }
  }
`);

export const finishPasskeyLoginMutation = graphql(`
  mutation FinishPasskeyLogin($challengeId: ID!, $credential: JSON!) {
    finishPasskeyLogin(challengeId: $challengeId, credential: $credential) {
      accessToken
      expiresIn
      user {
        id
        email
      }
    }
  }
`);

export const deletePasskeyMutation = graphql(`
  mutation DeletePasskey($id: ID!) {
    deletePasskey(id: $id)
  }
`);
