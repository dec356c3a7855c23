package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one rendered mail, ready for a Transport.
type Message struct {
	ID      string // the outbox id: the Message-ID header is derived from it, so a resent mail is recognisable
	To      string
	Subject string
	Text    string // the text/plain part
	HTML    string // the text/html part
}

// Transport delivers rendered messages.
type Transport interface {
	// Send delivers m, or returns why not. An error wrapped by Permanent means that trying again
	// cannot help (a rejected recipient); any other error is worth a retry.
	Send(ctx context.Context, m *Message) error
}

// permanentError marks an error that a retry cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that IsPermanent reports true: the Sender then gives the message up at once
// instead of retrying it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// SMTPConfig is a parsed SMTP_URL.
type SMTPConfig struct {
	Host     string
	Port     int
	Implicit bool   // smtps://: TLS from the first byte; smtp:// uses STARTTLS when the server offers it
	Username string // auth only when set
	Password string
}

// ParseSMTPURL parses smtp://[user:pass@]host[:port] (port 587 by default; STARTTLS when the server
// offers it) or smtps://[user:pass@]host[:port] (port 465 by default; implicit TLS). It returns an
// error for any other scheme, a missing host, a bad port, or a path, query or fragment (which would
// be silently ignored otherwise). The error never includes the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the URL, password included.
		return SMTPConfig{}, errors.New("SMTP_URL: not a URL")
	}
	var c SMTPConfig
	switch u.Scheme {
	case "smtp":
		c.Port = 587
	case "smtps":
		c.Implicit, c.Port = true, 465
	default:
		return SMTPConfig{}, fmt.Errorf("SMTP_URL: scheme %q: want smtp:// or smtps://", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPConfig{}, errors.New("SMTP_URL: want scheme://[user:pass@]host[:port] and nothing else")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return SMTPConfig{}, errors.New("SMTP_URL: no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("SMTP_URL: port %q", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	return c, nil
}

// SMTPOptions tune an SMTP transport; the zero value is fine.
type SMTPOptions struct {
	// Timeout bounds connecting and each SMTP command (10s when zero).
	Timeout time.Duration
	// TLSConfig replaces the default TLS settings (TLS 1.2 or later, the system roots, the URL's
	// host as server name); tests use it to trust their own certificate.
	TLSConfig *tls.Config
}

// SMTP is a Transport that delivers through an SMTP server with go-mail, one connection per
// message (the Sender sends a few messages at a time; a pooled connection would only add failure
// modes).
type SMTP struct {
	cfg  SMTPConfig
	from *mail.Address
	opts []gomail.Option
}

// NewSMTP returns a transport for smtpURL (see ParseSMTPURL) that sends from the address from
// (MAIL_FROM, e.g. "Example <no-reply@example.com>"). It connects to nothing yet.
func NewSMTP(smtpURL, from string, o SMTPOptions) (*SMTP, error) {
	cfg, err := ParseSMTPURL(smtpURL)
	if err != nil {
		return nil, err
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("MAIL_FROM %q: %w", from, err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	tlsConfig := o.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		tlsConfig = tlsConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = cfg.Host
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(o.Timeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	if cfg.Implicit {
		opts = append(opts, gomail.WithSSL())
	} else {
		// Opportunistic: STARTTLS whenever the server offers it, plain otherwise (a local relay or
		// Mailpit). Credentials still never travel in the clear to a remote host: go-mail's PLAIN and
		// LOGIN refuse an unencrypted connection except to localhost.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if cfg.Username != "" {
		auth := gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover) // the strongest the server offers
		if isLoopback(cfg.Host) {
			// Auto-discovery never picks PLAIN or LOGIN without TLS, not even to a relay on this
			// machine (Mailpit in development), which go-mail's PLAIN and LOGIN do allow.
			auth = gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin)
		}
		opts = append(opts, auth, gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{cfg: cfg, from: addr, opts: opts}, nil
}

// Send delivers m over a new connection. A recipient or message rejected with a 5xx reply, or an
// address that cannot be parsed, is a Permanent error; connection failures and 4xx replies are not.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.To(m.To); err != nil {
		return Permanent(fmt.Errorf("recipient: %w", err))
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID + "@" + domainOf(s.from.Address))
	} else {
		msg.SetMessageID()
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	client, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return Permanent(fmt.Errorf("smtp client: %w", err))
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
			return Permanent(err)
		}
		return err
	}
	return nil
}

// String describes the transport without its credentials.
func (s *SMTP) String() string {
	scheme := "smtp"
	if s.cfg.Implicit {
		scheme = "smtps"
	}
	return scheme + "://" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// isLoopback reports whether host is one that go-mail lets credentials reach without TLS.
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// domainOf returns the part of an address after its last @ ("localhost" without one).
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return addr[i+1:]
	}
	return "localhost"
}

// Log is a Transport for development without SMTP_URL: it prints each message's recipient, subject
// and text body to the log at info level, so that the links can be followed without a mail server.
// The body holds live tokens: never use it in production (the app refuses to).
type Log struct {
	Logger *slog.Logger
}

// Send logs m and never fails.
func (l Log) Send(ctx context.Context, m *Message) error {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.InfoContext(ctx, "mail (development log transport: set SMTP_URL to send it)",
		"to", m.To, "subject", m.Subject, "text", m.Text)
	return nil
}
