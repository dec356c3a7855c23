package mail

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/mailpit"
	"gqlauth/internal/tcpproxy"
	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
	"gqlauth/models"
)

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SMTPConfig
	}{
		{"smtp://127.0.0.1:1025", SMTPConfig{Host: "127.0.0.1", Port: 1025}},
		{"smtp://mail.example.com", SMTPConfig{Host: "mail.example.com", Port: 587}},
		{"smtp://user%40example.com:p%3Ass@mail.example.com:2525/", SMTPConfig{Host: "mail.example.com", Port: 2525, Username: "user@example.com", Password: "p:ss"}},
		{"smtps://mail.example.com", SMTPConfig{Host: "mail.example.com", Port: 465, Implicit: true}},
		{"smtps://u:p@[::1]:4650", SMTPConfig{Host: "::1", Port: 4650, Implicit: true, Username: "u", Password: "p"}},
	} {
		got, err := ParseSMTPURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSMTPURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "mail.example.com:25", "http://mail.example.com", "smtp://", "smtp://:25",
		"smtp://h:0", "smtp://h:99999", "smtp://h:x", "smtp://h/path", "smtp://h?tls=no", "smtp://u:secret@h:1\x7f"} {
		_, err := ParseSMTPURL(bad)
		if err == nil {
			t.Errorf("ParseSMTPURL(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseSMTPURL's error shows the password: %v", err)
		}
	}
}

func TestNewSMTP(t *testing.T) {
	s, err := NewSMTP("smtps://u:p@mail.example.com", "Example <no-reply@example.com>", SMTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "smtps://mail.example.com:465" || !s.cfg.Implicit || s.from.Address != "no-reply@example.com" {
		t.Fatalf("transport %s %+v", s, s.from)
	}
	if _, err := NewSMTP("smtp://h:25", "not an address", SMTPOptions{}); err == nil {
		t.Fatal("a bad MAIL_FROM is accepted")
	}
	if _, err := NewSMTP("ftp://h", "a@example.com", SMTPOptions{}); err == nil {
		t.Fatal("a bad SMTP_URL is accepted")
	}
}

func TestLogTransport(t *testing.T) {
	var buf testlog.Buffer
	l := Log{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := l.Send(context.Background(), &Message{To: "a@example.com", Subject: "Verify your e-mail address", Text: "open https://x/?token=abc"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=INFO", "a@example.com", "Verify your e-mail address", "token=abc"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("log lacks %q: %s", want, buf.String())
		}
	}
}

// mailpitTransport returns an SMTP transport to the shared Mailpit (with rawURL's host replaced by
// host when it is not "") and a client of its API.
func mailpitTransport(t *testing.T, host string) (*SMTP, *mailpit.Client, string) {
	t.Helper()
	smtpURL, apiURL := testdb.Mailpit(t)
	u, err := url.Parse(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		u.Host = host
	}
	tr, err := NewSMTP(u.String(), "Gqlauth Test <no-reply@example.com>", SMTPOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tr, mailpit.New(apiURL), u.Host
}

// Every kind, queued in the outbox, arrives in Mailpit with its subject, a text and an HTML part,
// and a Message-ID derived from its outbox id (smtp:// with opportunistic STARTTLS: Mailpit here
// offers none, and the mail still goes).
func TestMailpitDelivery(t *testing.T) {
	tr, mp, _ := mailpitTransport(t, "")
	st := newFakeStore()
	want := map[string]string{} // address → subject
	ids := map[string]string{}  // address → outbox id
	for kind, subject := range map[string]string{
		auth.KindPasswordReset: "Reset your password", auth.KindVerifyEmail: "Verify your e-mail address",
		auth.KindChangeEmail: "Confirm your new e-mail address", auth.KindPasswordChanged: "Your password was changed",
		auth.KindEmailChanged: "Your e-mail address was changed",
	} {
		to := mailpit.Address(t)
		want[to] = subject
		ids[to] = st.add(kind, to, fullData())
	}
	s := NewSender(st, tr, MustLoadTemplates(), fast(nil))
	start(t, s)
	s.Kick()
	for to, subject := range want {
		m := mp.WaitOne(t, to, 10*time.Second)
		if m.Subject != subject || m.From.Address != "no-reply@example.com" || m.MessageID != ids[to]+"@example.com" {
			t.Fatalf("message to %s: subject %q, from %+v, message id %q", to, m.Subject, m.From, m.MessageID)
		}
		if strings.TrimSpace(m.Text) == "" || !strings.Contains(m.HTML, "<p>Hello,</p>") {
			t.Fatalf("message to %s lacks a part: text %q, html %q", to, m.Text, m.HTML)
		}
		if strings.Contains(subject, "Reset") && (!strings.Contains(m.Text, "https://app.example/x?token=T0K3N&v=1") ||
			!strings.Contains(m.HTML, "https://app.example/x?token=T0K3N&amp;v=1") || !strings.Contains(m.Text, "expires in 1 hour")) {
			t.Fatalf("reset mail without its link or validity:\n%s\n%s", m.Text, m.HTML)
		}
		eventually(t, 3*time.Second, "recorded as sent", func() bool { return st.get(ids[to]).status == models.MailSent })
	}
}

// Credentials in SMTP_URL are used (Mailpit accepts any with --smtp-auth-accept-any; go-mail only
// sends them unencrypted to localhost).
func TestMailpitWithCredentials(t *testing.T) {
	smtpURL, apiURL := testdb.Mailpit(t)
	u, _ := url.Parse(smtpURL)
	u.User = url.UserPassword("user", "pass")
	tr, err := NewSMTP(u.String(), "no-reply@example.com", SMTPOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	to := mailpit.Address(t)
	if err := tr.Send(context.Background(), &Message{To: to, Subject: "Hi", Text: "text", HTML: "<p>html</p>"}); err != nil {
		t.Fatal(err)
	}
	if m := mailpit.New(apiURL).WaitOne(t, to, 5*time.Second); m.Subject != "Hi" || strings.TrimSpace(m.Text) != "text" {
		t.Fatalf("message %+v", m)
	}
}

// The SMTP server goes away with mail queued: the sender retries with backoff (no busy loop), and
// once the server is back, without a restart, the mail arrives exactly once.
func TestMailpitDownThenBack(t *testing.T) {
	smtpURL, _ := testdb.Mailpit(t)
	u, _ := url.Parse(smtpURL)
	proxy := tcpproxy.New(t, u.Host)
	proxy.Cut()
	tr, mp, _ := mailpitTransport(t, proxy.Addr())
	var tries sync.Map // attempts per message
	counting := transportFunc(func(ctx context.Context, m *Message) error {
		n, _ := tries.LoadOrStore(m.ID, new(int))
		*n.(*int)++
		return tr.Send(ctx, m)
	})
	st, res := newFakeStore(), &results{}
	to := mailpit.Address(t)
	id := st.add(auth.KindVerifyEmail, to, verifyData())
	o := fast(res)
	o.Backoff = func(int) time.Duration { return 100 * time.Millisecond }
	start(t, NewSender(st, counting, MustLoadTemplates(), o))

	eventually(t, 5*time.Second, "attempts while SMTP is down", func() bool { return st.get(id).mail.Attempts >= 2 })
	claims0, attempts0 := st.claimCount(), st.get(id).mail.Attempts
	time.Sleep(time.Second)
	claims, attempts := st.claimCount()-claims0, st.get(id).mail.Attempts-attempts0
	// 1s at a 20ms poll and a 100ms backoff: about 50 claims and 10 attempts; a busy loop makes
	// thousands.
	if claims > 80 || attempts > 12 {
		t.Fatalf("in 1s while SMTP was down: %d claims, %d attempts: a busy loop", claims, attempts)
	}
	if r := st.get(id); r.status != models.MailPending || r.lastErr == "" || r.mail.Data == nil {
		t.Fatalf("row while down: %+v", r)
	}
	if mp.Count(t, to) != 0 {
		t.Fatal("delivered while down")
	}

	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	m := mp.WaitOne(t, to, 10*time.Second)
	if m.Subject != "Verify your e-mail address" {
		t.Fatalf("subject %q", m.Subject)
	}
	eventually(t, 3*time.Second, "recorded as sent", func() bool { return st.get(id).status == models.MailSent })
	time.Sleep(300 * time.Millisecond) // a duplicate would have arrived by now
	if n := mp.Count(t, to); n != 1 {
		t.Fatalf("%d messages delivered, want exactly 1", n)
	}
	if r := st.get(id); r.mail.Data != nil {
		t.Fatalf("sent row keeps its data: %v", r.mail.Data)
	}
	eventually(t, 2*time.Second, "the sent result", func() bool {
		got := res.list()
		return len(got) > 0 && got[len(got)-1] == "verify_email:sent"
	})
	got := res.list()
	if len(got) < 3 || got[len(got)-1] != "verify_email:sent" || got[0] != "verify_email:retry" {
		t.Fatalf("results %v", got)
	}
}

type transportFunc func(context.Context, *Message) error

func (f transportFunc) Send(ctx context.Context, m *Message) error { return f(ctx, m) }

// A permanent rejection (550 for the recipient) fails the message at once instead of retrying it.
func TestSMTPRejectionIsPermanent(t *testing.T) {
	srv := newFakeSMTP(t, fakeSMTPOptions{rejectRcpt: true})
	tr, err := NewSMTP("smtp://"+srv.addr, "no-reply@example.com", SMTPOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Send(context.Background(), &Message{To: "gone@example.com", Subject: "s", Text: "t"})
	if !IsPermanent(err) {
		t.Fatalf("550 on RCPT: %v, want a permanent error", err)
	}
	if err := tr.Send(context.Background(), &Message{To: "not an address", Subject: "s", Text: "t"}); !IsPermanent(err) {
		t.Fatalf("a bad recipient: %v, want a permanent error", err)
	}
}

// smtps:// speaks TLS from the first byte, and smtp:// upgrades with STARTTLS when the server
// offers it, sending credentials only inside TLS; both verify the server's certificate.
func TestSMTPTLS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scheme string
		o      fakeSMTPOptions
	}{
		{"smtps", "smtps", fakeSMTPOptions{implicit: true}},
		{"starttls", "smtp", fakeSMTPOptions{starttls: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeSMTP(t, tc.o)
			tr, err := NewSMTP(tc.scheme+"://user:secret@"+srv.addr, "no-reply@example.com",
				SMTPOptions{Timeout: 3 * time.Second, TLSConfig: &tls.Config{RootCAs: srv.roots, MinVersion: tls.VersionTLS12}})
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Send(context.Background(), &Message{To: "to@example.com", Subject: "TLS", Text: "hello", HTML: "<p>hello</p>"}); err != nil {
				t.Fatal(err)
			}
			got := srv.result()
			if !got.dataOverTLS || !got.authOverTLS || !strings.Contains(got.data, "Subject: TLS") || got.rcpt != "<to@example.com>" {
				t.Fatalf("server saw %+v", got)
			}
			if !strings.Contains(got.data, "text/plain") || !strings.Contains(got.data, "text/html") {
				t.Fatalf("not multipart/alternative:\n%s", got.data)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := newFakeSMTP(t, fakeSMTPOptions{implicit: true})
		tr, err := NewSMTP("smtps://"+srv.addr, "no-reply@example.com", SMTPOptions{Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(context.Background(), &Message{To: "to@example.com", Subject: "s", Text: "t"}); err == nil || IsPermanent(err) {
			t.Fatalf("a self-signed server: %v, want a transient error", err)
		}
	})
}

// fakeSMTP is a minimal SMTP server for the TLS paths, which Mailpit (plain in tests) cannot show.
type fakeSMTP struct {
	addr  string
	roots *x509.CertPool
	mu    sync.Mutex
	got   fakeSMTPResult
}

type fakeSMTPOptions struct {
	implicit   bool // TLS from the first byte (smtps)
	starttls   bool // offer STARTTLS
	rejectRcpt bool // answer RCPT TO with 550
}

type fakeSMTPResult struct {
	rcpt        string
	data        string
	dataOverTLS bool
	authOverTLS bool
}

func (f *fakeSMTP) result() fakeSMTPResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func newFakeSMTP(t *testing.T, o fakeSMTPOptions) *fakeSMTP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}

	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{addr: ln.Addr().String(), roots: roots}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c, o, tlsConf) })
		}
	})
	return f
}

// serve speaks just enough SMTP for one client: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
func (f *fakeSMTP) serve(c net.Conn, o fakeSMTPOptions, tlsConf *tls.Config) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	isTLS := false
	if o.implicit {
		c, isTLS = tls.Server(c, tlsConf), true
	}
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s string) { _, _ = w.WriteString(s + "\r\n"); _ = w.Flush() }
	say("220 fake ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			ext := []string{"250-fake", "250-8BITMIME"}
			if o.starttls && !isTLS {
				ext = append(ext, "250-STARTTLS")
			}
			if isTLS {
				ext = append(ext, "250-AUTH PLAIN LOGIN")
			}
			ext = append(ext, "250 SIZE 10000000")
			say(strings.Join(ext, "\r\n"))
		case "STARTTLS":
			say("220 go ahead")
			c = tls.Server(c, tlsConf)
			r, w, isTLS = bufio.NewReader(c), bufio.NewWriter(c), true
		case "AUTH":
			f.mu.Lock()
			f.got.authOverTLS = isTLS
			f.mu.Unlock()
			if strings.HasPrefix(strings.ToUpper(line), "AUTH PLAIN") && len(strings.Fields(line)) == 2 {
				say("334 ")
				_, _ = r.ReadString('\n')
			}
			say("235 ok")
		case "RCPT":
			if o.rejectRcpt {
				say("550 5.1.1 no such user")
				continue
			}
			f.mu.Lock()
			f.got.rcpt = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "RCPT TO:"), "rcpt to:"))
			f.mu.Unlock()
			say("250 ok")
		case "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			f.mu.Lock()
			f.got.data, f.got.dataOverTLS = b.String(), isTLS
			f.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default: // MAIL, RSET, NOOP
			say("250 ok")
		}
	}
}
