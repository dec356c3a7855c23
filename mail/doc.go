// Package mail delivers the outbox of account recovery and e-mail verification: a Sender that
// claims queued messages from an auth.MailStore, renders them from templates (a text and an HTML
// part each, embedded defaults overridable file by file from a directory), and hands them to a
// Transport: SMTP through github.com/wneessen/go-mail, or the log in development.
//
// Delivery is durable and at-least-once by construction, exactly once under normal operation: a
// message is leased before it is sent (so no other replica sends it meanwhile), marked sent right
// after the SMTP server accepted it, and retried with a jittered exponential backoff while the
// server is unreachable. Once a message is sent or given up its data (which holds the link with a raw
// token) is emptied by the store, so nothing stored can reproduce a usable token.
//
// Nothing here logs a message's data or body, except the development log transport, whose purpose
// is to print the mail.
package mail
