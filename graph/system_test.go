package graph_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/password"
)

// loadSchema parses the contract, schema.graphqls.
func loadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "schema.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return schema
}

// Fail closed: every root field must say whether it is protected (@auth) or deliberately public.
func TestEveryRootFieldHasAuthOrPublic(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	checked := 0
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			checked++
			auth, public := f.Directives.ForName("auth") != nil, f.Directives.ForName("public") != nil
			if auth == public {
				t.Errorf("%s.%s must carry exactly one of @auth or @public", root.Name, f.Name)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d root fields", checked)
	}
}

// schema.graphqls is the contract: every type, field, argument, enum value and directive is described.
func TestSchemaIsDocumented(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	missing := func(what string) { t.Errorf("no description: %s", what) }
	args := func(owner string, list ast.ArgumentDefinitionList) {
		for _, a := range list {
			if a.Description == "" {
				missing(owner + "(" + a.Name + ")")
			}
		}
	}
	for name, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		if def.Description == "" {
			missing(name)
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if f.Description == "" {
				missing(name + "." + f.Name)
			}
			args(name+"."+f.Name, f.Arguments)
		}
		for _, v := range def.EnumValues {
			if v.Description == "" {
				missing(name + "." + v.Name)
			}
		}
	}
	for name, d := range schema.Directives {
		if d.Position == nil || d.Position.Src.BuiltIn {
			continue
		}
		if d.Description == "" {
			missing("@" + name)
		}
		args("@"+name, d.Arguments)
	}
}

// Revocation reaches another instance sharing the database within 2 s (it polls every
// REVOCATION_POLL_INTERVAL, 1s by default).
func TestCrossInstanceRevocation(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir() // shared signing key, like replicas with one configured key
		a := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir})
		b := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir})
		p := a.Register("alice@example.com", pw)
		q := b.Login("alice@example.com", pw)
		apptest.WantOK(t, b.Me(p.AccessToken))
		apptest.WantOK(t, a.Me(q.AccessToken))

		apptest.WantOK(t, a.Post(logoutQ, map[string]any{"t": p.RefreshToken}))
		apptest.WantCode(t, a.Me(p.AccessToken), "UNAUTHENTICATED", "SESSION_REVOKED") // at once on a
		start := time.Now()
		for {
			r := b.Me(p.AccessToken)
			if r.Code() == "UNAUTHENTICATED" && r.Ext("reason") == "SESSION_REVOKED" {
				break
			}
			apptest.WantOK(t, r)
			if time.Since(start) > 2*time.Second {
				t.Fatal("instance b still accepts a session revoked on a after 2s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("revocation reached the other instance after %s", time.Since(start).Round(time.Millisecond))
		apptest.WantOK(t, b.Me(q.AccessToken)) // other sessions unaffected
	})
}

// A restart keeps issued tokens valid: the generated key is persisted (0600) under DATA_DIR.
func TestRestartKeepsSigningKey(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		first := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir})
		p := first.Register("alice@example.com", pw)
		first.Server.Close()
		_ = first.App.Close()

		fi, err := os.Stat(filepath.Join(dir, "jwt-ed25519.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		second := apptest.New(t, dsn, apptest.Options{RealTime: true, DataDir: dir})
		apptest.WantOK(t, second.Me(p.AccessToken))
		apptest.WantOK(t, second.Refresh(p.RefreshToken))
	})
}

func TestHS256Secret(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	dsn := testdb.SQLite(t)
	e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"JWT_SECRET": secret}})
	p := e.Register("alice@example.com", pw)
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(p.AccessToken, ".")[0])
	if !strings.Contains(string(header), `"HS256"`) {
		t.Fatalf("header %s, want HS256", header)
	}
	apptest.WantOK(t, e.Me(p.AccessToken))
	// A server with another secret refuses it.
	other := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"JWT_SECRET": strings.Repeat("t", 32)}})
	apptest.WantCode(t, other.Me(p.AccessToken), "UNAUTHENTICATED", "TOKEN_INVALID")
}

func TestAccessTokenShape(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	p := e.Register("alice@example.com", pw)
	parts := strings.Split(p.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %s", p.AccessToken)
	}
	var header, claims map[string]any
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(h, &header)
	_ = json.Unmarshal(c, &claims)
	if header["alg"] != "EdDSA" || header["typ"] != "at+jwt" || header["kid"] == nil {
		t.Fatalf("header = %v", header)
	}
	for _, k := range []string{"iss", "aud", "sub", "sid", "role", "iat", "exp", "jti"} {
		if claims[k] == nil {
			t.Errorf("claim %s missing: %v", k, claims)
		}
	}
	if claims["iss"] != "gqlauth" || claims["sub"] != p.User.ID || claims["role"] != "USER" {
		t.Fatalf("claims = %v", claims)
	}
	// The JWKS publishes the key under the same kid.
	res, err := http.Get(e.Server.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v %v", err, set)
	}
	if set.Keys[0]["kid"] != header["kid"] || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["d"] != "" {
		t.Fatalf("jwks key = %v", set.Keys[0])
	}
}

// Nothing secret is stored in plaintext: not the refresh tokens, the passwords or the access tokens,
// nor the TOTP secret, the recovery codes or an MFA challenge.
func TestNoPlaintextSecretsAtRest(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{})
		p := e.Register("alice@example.com", pw)
		q := e.MustPair(e.Refresh(p.RefreshToken), "refreshToken")
		l := e.Login("alice@example.com", pw)
		secrets := []string{pw, p.RefreshToken, q.RefreshToken, l.RefreshToken, p.AccessToken, q.AccessToken}

		// Second factors: the TOTP secret (as base32 and as its raw bytes), the recovery codes (as shown
		// and normalised) and the MFA challenge of a login.
		totpSecret, codes := enrolTOTP(t, e, l.AccessToken)
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(totpSecret)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, totpSecret, strings.ToLower(totpSecret), hex.EncodeToString(raw), string(raw))
		for _, c := range codes {
			secrets = append(secrets, c, strings.ReplaceAll(c, "-", ""))
		}
		challenge := mfaChallenge(t, e, "alice@example.com", pw)
		m := e.MustPair(verifyMfa(e, challenge, codes[0]), "verifyMfa")
		secrets = append(secrets, challenge, m.RefreshToken, m.AccessToken)

		dump := dumpTables(t, e, "users", "sessions", "refresh_tokens", "email_tokens", "mail_outbox", "recovery_codes", "auth_challenges")
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Fatalf("a secret is stored in plaintext: %.12s…", s)
			}
		}
		if !strings.Contains(dump, "$argon2id$v=19$") {
			t.Fatal("password hash is not argon2id PHC")
		}
	})
}

// dumpTables returns every value of every row of tables as text, a byte value also in hex and
// base64url, so that a test can look for a secret in any form; it fails when a table is empty.
func dumpTables(t *testing.T, e *apptest.Env, tables ...string) string {
	t.Helper()
	var dump strings.Builder
	db := e.App.Store.Gorm()
	for _, table := range tables {
		rows, err := db.Raw("SELECT * FROM " + table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					fmt.Fprintf(&dump, "%s|%x|%s|", b, b, base64.RawURLEncoding.EncodeToString(b))
				} else {
					fmt.Fprintf(&dump, "%v|", v)
				}
			}
		}
		_ = rows.Close()
		if n == 0 {
			t.Fatalf("table %s is empty", table)
		}
	}
	return dump.String()
}

// Stored hashes are upgraded at login when the configured argon2id parameters change.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	dsn := testdb.SQLite(t)
	e := apptest.New(t, dsn, apptest.Options{})
	p := e.Register("alice@example.com", pw)
	stronger := password.Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	e2 := apptest.New(t, dsn, apptest.Options{Password: &stronger})
	e2.Login("alice@example.com", pw)
	var hash string
	e2.App.Store.Gorm().Raw("SELECT password_hash FROM users WHERE id = ?", p.User.ID).Scan(&hash)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=128,t=2,p=1$") {
		t.Fatalf("hash not upgraded: %s", hash[:30])
	}
	e2.Login("alice@example.com", pw)
}

// Database failures become INTERNAL_SERVER_ERROR with a generic message: no SQL, no driver text.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	p := e.Register("alice@example.com", pw)
	if err := e.App.Store.Gorm().Exec("DROP TABLE refresh_tokens").Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range []apptest.Response{
		e.Refresh(p.RefreshToken),
		e.Post(`mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, map[string]any{"i": map[string]any{"email": "alice@example.com", "password": pw}}),
	} {
		apptest.WantCode(t, r, "INTERNAL_SERVER_ERROR", "")
		msg := strings.ToLower(r.Errors[0].Message)
		for _, leak := range []string{"sql", "table", "refresh_tokens", "no such"} {
			if strings.Contains(msg, leak) {
				t.Fatalf("message leaks internals: %q", r.Errors[0].Message)
			}
		}
	}
}

// JWT_PRIVATE_KEY_FILE takes an operator's own Ed25519 key in PKCS#8 PEM (as openssl genpkey writes it).
func TestConfiguredKeyFile(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"JWT_PRIVATE_KEY_FILE": path}})
	p := e.Register("alice@example.com", pw)
	apptest.WantOK(t, e.Me(p.AccessToken))
	res, err := http.Get(e.Server.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []struct{ X string } `json:"keys"`
	}
	_ = json.NewDecoder(res.Body).Decode(&set)
	if len(set.Keys) != 1 || set.Keys[0].X != base64.RawURLEncoding.EncodeToString(pub) {
		t.Fatalf("JWKS does not publish the configured key: %+v", set)
	}
	if _, err := os.Stat(filepath.Join(e.Config.DataDir, "jwt-ed25519.pem")); !os.IsNotExist(err) {
		t.Fatal("a key was generated although JWT_PRIVATE_KEY_FILE is set")
	}
}
