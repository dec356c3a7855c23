package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss = "https://auth.example.test"
	testAud = "gqlauth-api"
	testTTL = 15 * time.Minute
)

// t0 is a whole second, so exp and iat survive NumericDate truncation unchanged.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testOptions(now *time.Time, leeway time.Duration) Options {
	return Options{Issuer: testIss, Audience: testAud, TTL: testTTL, Leeway: leeway, Now: func() time.Time { return *now }}
}

func testEdKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testSecret(b byte) []byte { return bytes.Repeat([]byte{b}, MinSecretLength) }

func newEd(t testing.TB, now *time.Time, leeway time.Duration) (*Issuer, ed25519.PrivateKey) {
	t.Helper()
	key := testEdKey(1)
	i, err := NewEdDSAIssuer(key, testOptions(now, leeway))
	if err != nil {
		t.Fatal(err)
	}
	return i, key
}

func newHS(t testing.TB, now *time.Time, leeway time.Duration) (*Issuer, []byte) {
	t.Helper()
	secret := testSecret(2)
	i, err := NewHS256Issuer(secret, testOptions(now, leeway))
	if err != nil {
		t.Fatal(err)
	}
	return i, secret
}

// goodHeader and goodClaims describe a token Verify accepts at t0; each test case changes one thing.
func goodHeader(kid string) map[string]any {
	return map[string]any{"typ": "at+jwt", "kid": kid}
}

func goodClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIss, "aud": []string{testAud}, "sub": "user-1", "sid": "sess-1", "role": "USER",
		"iat": now.Unix(), "exp": now.Add(testTTL).Unix(), "jti": "jti-1",
	}
}

// sign builds a token from scratch, so tests can produce headers and claims Issue never would.
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header = map[string]any{}
	for k, v := range header {
		tok.Header[k] = v
	}
	tok.Header["alg"] = method.Alg()
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func decodeSegment(t testing.TB, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeSegment(t testing.TB, m map[string]any) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("err = %v, want nil", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("err = %v, want %v", err, want)
	case errors.Is(want, ErrInvalid) && errors.Is(err, ErrExpired),
		errors.Is(want, ErrExpired) && errors.Is(err, ErrInvalid):
		t.Fatalf("err = %v matches both ErrInvalid and ErrExpired", err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	now := t0
	ed, _ := newEd(t, &now, 0)
	hs, _ := newHS(t, &now, 0)
	for _, tc := range []struct {
		name string
		iss  *Issuer
		alg  string
	}{
		{"EdDSA", ed, "EdDSA"},
		{"HS256", hs, "HS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.iss.Algorithm() != tc.alg || tc.iss.TTL() != testTTL {
				t.Fatalf("Algorithm() = %q, TTL() = %v", tc.iss.Algorithm(), tc.iss.TTL())
			}
			raw, exp, err := tc.iss.Issue("user-1", "sess-1", "ADMIN")
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(testTTL)) {
				t.Errorf("expiresAt = %v, want %v", exp, t0.Add(testTTL))
			}
			parts := strings.Split(raw, ".")
			h := decodeSegment(t, parts[0])
			if h["alg"] != tc.alg || h["typ"] != "at+jwt" || h["kid"] != tc.iss.KeyID() || len(h) != 3 {
				t.Errorf("header = %v", h)
			}
			c, err := tc.iss.Verify(raw)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "user-1" || c.SessionID != "sess-1" || c.Role != "ADMIN" || c.Issuer != testIss ||
				len(c.Audience) != 1 || c.Audience[0] != testAud ||
				!c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(exp) || c.NotBefore != nil {
				t.Errorf("claims = %+v", c)
			}
			if jti, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(jti) != 16 {
				t.Errorf("jti = %q (%v), want 16 bytes base64url", c.ID, err)
			}
			raw2, _, err := tc.iss.Issue("user-1", "sess-1", "ADMIN")
			if err != nil {
				t.Fatal(err)
			}
			c2, err := tc.iss.Verify(raw2)
			if err != nil || c2.ID == c.ID {
				t.Errorf("second token: jti %q vs %q, err %v", c2.ID, c.ID, err)
			}
		})
	}
}

func TestIssueRejectsEmpty(t *testing.T) {
	t.Parallel()
	now := t0
	i, _ := newEd(t, &now, 0)
	for _, args := range [][3]string{{"", "s", "r"}, {"u", "", "r"}, {"u", "s", ""}} {
		if _, _, err := i.Issue(args[0], args[1], args[2]); err == nil {
			t.Errorf("Issue%q: no error", args)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	const leeway = 30 * time.Second
	exp := t0.Add(testTTL)
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		at     time.Time
		want   error
	}{
		{"just before exp", 0, exp.Add(-time.Second), nil},
		{"at exp without leeway", 0, exp, ErrExpired},
		{"past exp without leeway", 0, exp.Add(time.Second), ErrExpired},
		{"within leeway", leeway, exp.Add(leeway - time.Second), nil},
		{"at end of leeway", leeway, exp.Add(leeway), ErrExpired},
		{"long past", leeway, exp.Add(24 * time.Hour), ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			i, _ := newEd(t, &now, tc.leeway)
			raw, _, err := i.Issue("user-1", "sess-1", "USER")
			if err != nil {
				t.Fatal(err)
			}
			now = tc.at
			c, err := i.Verify(raw)
			wantErr(t, err, tc.want)
			if tc.want != nil && c != nil {
				t.Fatal("claims returned with an error")
			}
		})
	}
}

// TestVerifyRejects feeds hand-made tokens to an EdDSA and an HS256 issuer. The "control" cases show
// the token factory itself yields acceptable tokens, so each rejection is caused by its one change.
func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	now := t0
	ed, edKey := newEd(t, &now, 5*time.Second)
	hs, secret := newHS(t, &now, 5*time.Second)
	edPub := edKey.Public().(ed25519.PublicKey)
	otherEd := testEdKey(9)

	type tc struct {
		name   string
		method jwt.SigningMethod
		key    any
		header func(map[string]any)
		claims func(jwt.MapClaims)
		want   error
	}
	del := func(k string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, k) } }
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	delH := func(k string) func(map[string]any) { return func(h map[string]any) { delete(h, k) } }
	setH := func(k string, v any) func(map[string]any) { return func(h map[string]any) { h[k] = v } }
	expired := func(c jwt.MapClaims) {
		c["iat"] = t0.Add(-time.Hour).Unix()
		c["exp"] = t0.Add(-time.Minute).Unix()
	}
	both := func(fs ...func(jwt.MapClaims)) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			for _, f := range fs {
				f(c)
			}
		}
	}

	common := func(method jwt.SigningMethod, key any) []tc {
		return []tc{
			{name: "control", method: method, key: key},
			{name: "control typ application/at+jwt", method: method, key: key, header: setH("typ", "application/at+jwt")},
			{name: "control typ upper case", method: method, key: key, header: setH("typ", "AT+JWT")},
			{name: "control aud as string", method: method, key: key, claims: set("aud", testAud)},
			{name: "control nbf in past", method: method, key: key, claims: set("nbf", t0.Add(-time.Minute).Unix())},
			{name: "alg none", method: jwt.SigningMethodNone, key: jwt.UnsafeAllowNoneSignatureType, want: ErrInvalid},
			{name: "wrong iss", method: method, key: key, claims: set("iss", "https://evil.example"), want: ErrInvalid},
			{name: "missing iss", method: method, key: key, claims: del("iss"), want: ErrInvalid},
			{name: "wrong aud", method: method, key: key, claims: set("aud", []string{"other-api"}), want: ErrInvalid},
			{name: "missing aud", method: method, key: key, claims: del("aud"), want: ErrInvalid},
			{name: "missing exp", method: method, key: key, claims: del("exp"), want: ErrInvalid},
			{name: "nbf in future", method: method, key: key, claims: set("nbf", t0.Add(time.Minute).Unix()), want: ErrInvalid},
			{name: "iat in future", method: method, key: key, claims: set("iat", t0.Add(time.Minute).Unix()), want: ErrInvalid},
			{name: "missing iat", method: method, key: key, claims: del("iat"), want: ErrInvalid},
			{name: "missing sub", method: method, key: key, claims: del("sub"), want: ErrInvalid},
			{name: "missing sid", method: method, key: key, claims: del("sid"), want: ErrInvalid},
			{name: "empty sid", method: method, key: key, claims: set("sid", ""), want: ErrInvalid},
			{name: "missing role", method: method, key: key, claims: del("role"), want: ErrInvalid},
			{name: "missing jti", method: method, key: key, claims: del("jti"), want: ErrInvalid},
			{name: "sid not a string", method: method, key: key, claims: set("sid", 42), want: ErrInvalid},
			{name: "exp not a number", method: method, key: key, claims: set("exp", "tomorrow"), want: ErrInvalid},
			{name: "unknown kid", method: method, key: key, header: setH("kid", "some-other-kid"), want: ErrInvalid},
			{name: "missing kid", method: method, key: key, header: delH("kid"), want: ErrInvalid},
			{name: "kid not a string", method: method, key: key, header: setH("kid", 7), want: ErrInvalid},
			{name: "wrong typ", method: method, key: key, header: setH("typ", "JWT"), want: ErrInvalid},
			{name: "missing typ", method: method, key: key, header: delH("typ"), want: ErrInvalid},
			{name: "crit header", method: method, key: key, header: setH("crit", []string{"exp"}), want: ErrInvalid},
			{name: "expired", method: method, key: key, claims: expired, want: ErrExpired},
			{name: "expired and wrong iss", method: method, key: key, claims: both(expired, set("iss", "x")), want: ErrInvalid},
			{name: "expired and missing sid", method: method, key: key, claims: both(expired, del("sid")), want: ErrInvalid},
			{name: "expired and nbf in future", method: method, key: key, claims: both(expired, set("nbf", t0.Add(time.Hour).Unix())), want: ErrInvalid},
		}
	}

	suites := []struct {
		name  string
		iss   *Issuer
		cases []tc
	}{
		{"EdDSA", ed, append(common(jwt.SigningMethodEdDSA, edKey),
			tc{name: "alg confusion HS256 keyed with public key", method: jwt.SigningMethodHS256, key: []byte(edPub), want: ErrInvalid},
			tc{name: "HS256 token", method: jwt.SigningMethodHS256, key: secret, want: ErrInvalid},
			tc{name: "other Ed25519 key same kid", method: jwt.SigningMethodEdDSA, key: otherEd, want: ErrInvalid},
			tc{name: "HS384 keyed with public key", method: jwt.SigningMethodHS384, key: []byte(edPub), want: ErrInvalid},
		)},
		{"HS256", hs, append(common(jwt.SigningMethodHS256, secret),
			tc{name: "EdDSA token", method: jwt.SigningMethodEdDSA, key: edKey, want: ErrInvalid},
			tc{name: "other secret same kid", method: jwt.SigningMethodHS256, key: testSecret(3), want: ErrInvalid},
			tc{name: "HS512 with same secret", method: jwt.SigningMethodHS512, key: secret, want: ErrInvalid},
		)},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			for _, c := range s.cases {
				t.Run(c.name, func(t *testing.T) {
					h := goodHeader(s.iss.KeyID())
					if c.header != nil {
						c.header(h)
					}
					cl := goodClaims(t0)
					if c.claims != nil {
						c.claims(cl)
					}
					got, err := s.iss.Verify(sign(t, c.method, c.key, h, cl))
					wantErr(t, err, c.want)
					if (err == nil) != (got != nil) {
						t.Fatalf("claims %v with err %v", got, err)
					}
				})
			}
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	t.Parallel()
	now := t0
	i, _ := newEd(t, &now, 0)
	raw, _, err := i.Issue("user-1", "sess-1", "USER")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	for _, tc := range []struct {
		name   string
		mutate func() string
	}{
		{"role escalated, old signature", func() string {
			c := decodeSegment(t, parts[1])
			c["role"] = "ADMIN"
			return parts[0] + "." + encodeSegment(t, c) + "." + parts[2]
		}},
		{"sub changed, old signature", func() string {
			c := decodeSegment(t, parts[1])
			c["sub"] = "user-2"
			return parts[0] + "." + encodeSegment(t, c) + "." + parts[2]
		}},
		{"header alg swapped to HS256, old signature", func() string {
			h := decodeSegment(t, parts[0])
			h["alg"] = "HS256"
			return encodeSegment(t, h) + "." + parts[1] + "." + parts[2]
		}},
		{"signature byte flipped", func() string {
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 1
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}},
		{"signature removed", func() string { return parts[0] + "." + parts[1] + "." }},
		{"signature non-canonical base64", func() string {
			// The last char of an 86-char Ed25519 signature carries 2 unused bits; setting one keeps
			// the decoded bytes identical under lax decoding.
			s := []byte(parts[2])
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			s[len(s)-1] = alphabet[strings.IndexByte(alphabet, s[len(s)-1])|1]
			return parts[0] + "." + parts[1] + "." + string(s)
		}},
		{"extra segment", func() string { return raw + ".x" }},
		{"truncated", func() string { return raw[:len(raw)-10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := i.Verify(tc.mutate())
			wantErr(t, err, ErrInvalid)
		})
	}
	if _, err := i.Verify(raw); err != nil {
		t.Fatalf("original no longer verifies: %v", err)
	}
}

func TestVerifyLength(t *testing.T) {
	t.Parallel()
	now := t0
	i, key := newEd(t, &now, 0)
	withPad := func(n int) string {
		c := goodClaims(t0)
		c["pad"] = strings.Repeat("a", n)
		return sign(t, jwt.SigningMethodEdDSA, key, goodHeader(i.KeyID()), c)
	}
	small, big := withPad(100), withPad(MaxAccessTokenLength)
	if len(small) > MaxAccessTokenLength || len(big) <= MaxAccessTokenLength {
		t.Fatalf("lengths %d, %d", len(small), len(big))
	}
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"authentic token under the limit", small, nil},
		{"authentic token over the limit", big, ErrInvalid},
		{"garbage over the limit", strings.Repeat("a.", MaxAccessTokenLength), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := i.Verify(tc.raw)
			wantErr(t, err, tc.want)
		})
	}
}

func TestVerifyGarbage(t *testing.T) {
	t.Parallel()
	now := t0
	i, _ := newEd(t, &now, 0)
	refresh, _, err := NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"", ".", "..", "a.b.c", refresh, "Bearer x.y.z", "e30.e30.", strings.Repeat(".", 3)} {
		t.Run(raw, func(t *testing.T) {
			_, err := i.Verify(raw)
			wantErr(t, err, ErrInvalid)
		})
	}
	var nilIssuer *Issuer
	if _, err := nilIssuer.Verify("a.b.c"); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil issuer: %v", err)
	}
}

func TestNewIssuerValidation(t *testing.T) {
	t.Parallel()
	now := t0
	good := testOptions(&now, 0)
	withOpts := func(f func(*Options)) Options { o := good; f(&o); return o }
	badKey := append(ed25519.PrivateKey(nil), testEdKey(1)...)
	badKey[40] ^= 1 // corrupt the embedded public half

	for _, tc := range []struct {
		name string
		make func() (*Issuer, error)
		ok   bool
	}{
		{"HS256 32-byte secret", func() (*Issuer, error) { return NewHS256Issuer(testSecret(1), good) }, true},
		{"HS256 31-byte secret", func() (*Issuer, error) { return NewHS256Issuer(testSecret(1)[:31], good) }, false},
		{"HS256 nil secret", func() (*Issuer, error) { return NewHS256Issuer(nil, good) }, false},
		{"Ed25519 key", func() (*Issuer, error) { return NewEdDSAIssuer(testEdKey(1), good) }, true},
		{"Ed25519 short key", func() (*Issuer, error) { return NewEdDSAIssuer(testEdKey(1)[:32], good) }, false},
		{"Ed25519 inconsistent key", func() (*Issuer, error) { return NewEdDSAIssuer(badKey, good) }, false},
		{"missing issuer", func() (*Issuer, error) {
			return NewEdDSAIssuer(testEdKey(1), withOpts(func(o *Options) { o.Issuer = "" }))
		}, false},
		{"missing audience", func() (*Issuer, error) {
			return NewEdDSAIssuer(testEdKey(1), withOpts(func(o *Options) { o.Audience = "" }))
		}, false},
		{"zero TTL", func() (*Issuer, error) {
			return NewEdDSAIssuer(testEdKey(1), withOpts(func(o *Options) { o.TTL = 0 }))
		}, false},
		{"sub-second TTL", func() (*Issuer, error) {
			return NewHS256Issuer(testSecret(1), withOpts(func(o *Options) { o.TTL = 500 * time.Millisecond }))
		}, false},
		{"negative leeway", func() (*Issuer, error) {
			return NewEdDSAIssuer(testEdKey(1), withOpts(func(o *Options) { o.Leeway = -time.Second }))
		}, false},
		{"nil Now", func() (*Issuer, error) {
			return NewEdDSAIssuer(testEdKey(1), withOpts(func(o *Options) { o.Now = nil }))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := tc.make()
			if (err == nil) != tc.ok || (i != nil) != tc.ok {
				t.Fatalf("issuer %v, err %v, want ok=%v", i, err, tc.ok)
			}
		})
	}
}

// The issuer must not alias the caller's secret, or a caller wiping its buffer would break signing.
func TestHS256SecretCopied(t *testing.T) {
	t.Parallel()
	now := t0
	secret := testSecret(5)
	i, err := NewHS256Issuer(secret, testOptions(&now, 0))
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := i.Issue("u", "s", "r")
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	if _, err := i.Verify(raw); err != nil {
		t.Fatal(err)
	}
}

func TestRealClock(t *testing.T) {
	t.Parallel()
	i, err := NewEdDSAIssuer(testEdKey(1), Options{Issuer: testIss, Audience: testAud, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := i.Issue("u", "s", "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.Verify(raw); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	now := t0
	for _, mk := range []func(testing.TB, *time.Time, time.Duration) *Issuer{
		func(t testing.TB, n *time.Time, l time.Duration) *Issuer { i, _ := newEd(t, n, l); return i },
		func(t testing.TB, n *time.Time, l time.Duration) *Issuer { i, _ := newHS(t, n, l); return i },
	} {
		i := mk(t, &now, 0)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				for range 20 {
					raw, _, err := i.Issue("u", "s", "r")
					if err == nil {
						_, err = i.Verify(raw)
					}
					if err != nil {
						errs <- err
						return
					}
					_ = i.JWKS()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// amr and auth_time travel in the token when given (auth_time in whole seconds, as every NumericDate),
// and a token without them (minted before they were issued, or by Issue) still verifies.
func TestAuthenticationClaims(t *testing.T) {
	t.Parallel()
	now := t0
	iss, _ := newEd(t, &now, 0)
	authAt := t0.Add(-90*time.Second - 400*time.Millisecond)
	raw, _, err := iss.IssueAuthenticated("user-1", "sess-1", "USER", Authentication{AMR: []string{"pwd", "otp"}, Time: authAt})
	if err != nil {
		t.Fatal(err)
	}
	payload := decodeSegment(t, strings.Split(raw, ".")[1])
	if amr, ok := payload["amr"].([]any); !ok || len(amr) != 2 || amr[0] != "pwd" || amr[1] != "otp" {
		t.Fatalf("amr claim = %#v", payload["amr"])
	}
	if at, ok := payload["auth_time"].(float64); !ok || int64(at) != authAt.Unix() {
		t.Fatalf("auth_time claim = %#v, want %d", payload["auth_time"], authAt.Unix())
	}
	c, err := iss.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AMR) != 2 || c.AuthTime == nil || !c.AuthTime.Equal(authAt.Truncate(time.Second)) {
		t.Fatalf("claims = %+v", c)
	}
	plain, _, err := iss.Issue("user-1", "sess-1", "USER")
	if err != nil {
		t.Fatal(err)
	}
	if p := decodeSegment(t, strings.Split(plain, ".")[1]); p["amr"] != nil || p["auth_time"] != nil {
		t.Fatalf("Issue put amr/auth_time in the token: %v", p)
	}
	if c, err := iss.Verify(plain); err != nil || c.AMR != nil || c.AuthTime != nil {
		t.Fatalf("token without amr/auth_time: %+v, %v", c, err)
	}
}
