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
