package graph_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/webauthntest"
	"gqlauth/models"
)

// Passkeys through the real handler, with a software authenticator (internal/webauthntest) in the
// browser's place: registration (step-up), discoverable login, and every way a ceremony is refused,
// which is always INVALID_PASSKEY and never an internal error.

const (
	beginRegQ   = `mutation { beginPasskeyRegistration }`
	finishRegQ  = `mutation($c: JSON!, $n: String) { finishPasskeyRegistration(credential: $c, name: $n) { id name createdAt lastUsedAt } }`
	beginLoginQ = `mutation { beginPasskeyLogin { challengeId options } }`
	finishLogQ  = `mutation($id: ID!, $c: JSON!) { finishPasskeyLogin(challengeId: $id, credential: $c) { ` + apptest.PayloadFields + ` } }`
	passkeysQ   = `{ passkeys { id name createdAt lastUsedAt } }`
	deletePkQ   = `mutation($id: ID!) { deletePasskey(id: $id) }`
)

// pkOrigin is the origin the software authenticator's browser reports, and the one the server allows.
const pkOrigin = "http://localhost:3000"

// passkeyEnv starts a server whose relying party is localhost at pkOrigin; vars are name, value pairs.
func passkeyEnv(t *testing.T, dsn string, vars ...string) *apptest.Env {
	t.Helper()
	v := map[string]string{"WEBAUTHN_RP_ID": "localhost", "WEBAUTHN_RP_ORIGINS": pkOrigin + ",http://localhost:8080"}
	for i := 0; i+1 < len(vars); i += 2 {
		v[vars[i]] = vars[i+1]
	}
	return apptest.New(t, dsn, apptest.Options{Vars: v})
}

// passkeyOut is a Passkey as passkeysQ selects it.
type passkeyOut struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	CreatedAt  string  `json:"createdAt"`
	LastUsedAt *string `json:"lastUsedAt"`
}

func beginRegistration(t *testing.T, e *apptest.Env, access string) []byte {
	t.Helper()
	r := e.Post(beginRegQ, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	return r.Data["beginPasskeyRegistration"]
}

func finishRegistration(e *apptest.Env, access string, credential any, name *string) apptest.Response {
	e.T.Helper()
	vars := map[string]any{"c": credential}
	if name != nil {
		vars["n"] = *name
	}
	return e.Post(finishRegQ, vars, apptest.Bearer(access)...)
}

// registerPasskey registers a passkey of a for the holder of access, which must succeed.
func registerPasskey(t *testing.T, e *apptest.Env, access string, a *webauthntest.Authenticator, name *string) passkeyOut {
	t.Helper()
	cred, _, err := a.Register(beginRegistration(t, e, access))
	if err != nil {
		t.Fatal(err)
	}
	r := finishRegistration(e, access, json.RawMessage(cred), name)
	apptest.WantOK(t, r)
	var pk passkeyOut
	r.Decode(t, "finishPasskeyRegistration", &pk)
	return pk
}

func beginLogin(t *testing.T, e *apptest.Env) (string, []byte) {
	t.Helper()
	r := e.Post(beginLoginQ, nil)
	apptest.WantOK(t, r)
	var out struct {
		ChallengeID string          `json:"challengeId"`
		Options     json.RawMessage `json:"options"`
	}
	r.Decode(t, "beginPasskeyLogin", &out)
	return out.ChallengeID, out.Options
}

func finishLogin(e *apptest.Env, challengeID string, credential any) apptest.Response {
	e.T.Helper()
	return e.Post(finishLogQ, map[string]any{"id": challengeID, "c": credential})
}

// assert makes an assertion of a for options, which must succeed.
func assert(t *testing.T, a *webauthntest.Authenticator, options []byte, opts ...webauthntest.Option) json.RawMessage {
	t.Helper()
	cred, err := a.Assert(options, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// passkeyLogin logs in with a's passkey, which must succeed.
func passkeyLogin(t *testing.T, e *apptest.Env, a *webauthntest.Authenticator) apptest.Pair {
	t.Helper()
	id, options := beginLogin(t, e)
	return e.MustPair(finishLogin(e, id, assert(t, a, options)), "finishPasskeyLogin")
}

func listPasskeys(t *testing.T, e *apptest.Env, access string) []passkeyOut {
	t.Helper()
	r := e.Post(passkeysQ, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	var list []passkeyOut
	r.Decode(t, "passkeys", &list)
	return list
}

// amrOf reads the amr claim of an access token.
func amrOf(t *testing.T, access string) []string {
	t.Helper()
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %s", access)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.AuthTime == 0 {
		t.Fatalf("no auth_time in %s", raw)
	}
	return claims.AMR
}

func ptr(s string) *string { return &s }

// orphanCredential is a credential that the authenticator made for localhost but no server knows.
func orphanCredential(t *testing.T, a *webauthntest.Authenticator) {
	t.Helper()
	options := fmt.Sprintf(`{"rp":{"id":"localhost","name":"x"},"user":{"id":%q,"name":"x","displayName":"x"},`+
		`"challenge":"AAAAAAAAAAAAAAAAAAAAAA","pubKeyCredParams":[{"type":"public-key","alg":-7}]}`,
		base64.RawURLEncoding.EncodeToString([]byte(uuid.NewString())))
	if _, _, err := a.Register([]byte(options)); err != nil {
		t.Fatal(err)
	}
}

// Registration needs a fresh authentication and returns the creation options in their JSON form; the
// passkey then logs in (amr webauthn, kept by refresh), each ceremony answers once, and a second
// passkey's options exclude the first.
func TestPasskeyRegisterAndLogin(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		reg := e.Register("ann@example.com", pw)

		e.Clock.Advance(10*time.Minute + time.Second)
		r := e.Post(beginRegQ, nil, apptest.Bearer(reg.AccessToken)...)
		apptest.WantCode(t, r, "REAUTHENTICATION_REQUIRED", "")
		fresh := e.Login("ann@example.com", pw)

		options := beginRegistration(t, e, fresh.AccessToken)
		var o struct {
			RP struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"rp"`
			User struct {
				ID          string `json:"id"`
				Name        string `json:"name"`
				DisplayName string `json:"displayName"`
			} `json:"user"`
			Challenge              string `json:"challenge"`
			Timeout                int    `json:"timeout"`
			Attestation            string `json:"attestation"`
			AuthenticatorSelection struct {
				ResidentKey        string `json:"residentKey"`
				RequireResidentKey bool   `json:"requireResidentKey"`
				UserVerification   string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			ExcludeCredentials []struct {
				ID string `json:"id"`
			} `json:"excludeCredentials"`
		}
		if err := json.Unmarshal(options, &o); err != nil {
			t.Fatal(err)
		}
		sel := o.AuthenticatorSelection
		if o.RP.ID != "localhost" || o.RP.Name == "" || o.User.ID != base64.RawURLEncoding.EncodeToString([]byte(reg.User.ID)) ||
			o.User.Name != "ann@example.com" || o.User.DisplayName != "ann@example.com" || len(o.Challenge) < 22 ||
			o.Timeout != 300000 || o.Attestation != "none" || sel.ResidentKey != "required" || !sel.RequireResidentKey ||
			sel.UserVerification != "required" || len(o.ExcludeCredentials) != 0 {
			t.Fatalf("creation options: %s", options)
		}

		a := webauthntest.New(pkOrigin)
		cred, _, err := a.Register(options)
		if err != nil {
			t.Fatal(err)
		}
		r = finishRegistration(e, fresh.AccessToken, json.RawMessage(cred), ptr("  Laptop  "))
		apptest.WantOK(t, r)
		var pk passkeyOut
		r.Decode(t, "finishPasskeyRegistration", &pk)
		if pk.Name != "Laptop" || pk.LastUsedAt != nil || uuid.Validate(pk.ID) != nil {
			t.Fatalf("registered passkey: %s", r.Raw)
		}
		if list := listPasskeys(t, e, fresh.AccessToken); len(list) != 1 || list[0] != pk {
			t.Fatalf("passkeys = %+v, want [%+v]", list, pk)
		}

		id, loginOptions := beginLogin(t, e)
		var lo struct {
			Challenge        string `json:"challenge"`
			RPID             string `json:"rpId"`
			Timeout          int    `json:"timeout"`
			UserVerification string `json:"userVerification"`
			AllowCredentials []any  `json:"allowCredentials"`
		}
		if err := json.Unmarshal(loginOptions, &lo); err != nil {
			t.Fatal(err)
		}
		if uuid.Validate(id) != nil || lo.RPID != "localhost" || lo.UserVerification != "required" || lo.Timeout != 300000 ||
			len(lo.AllowCredentials) != 0 || len(lo.Challenge) < 22 {
			t.Fatalf("request options (discoverable, UV required): %s %s", id, loginOptions)
		}
		assertion := assert(t, a, loginOptions)
		pair := e.MustPair(finishLogin(e, id, assertion), "finishPasskeyLogin")
		if pair.User.Email != "ann@example.com" || pair.User.ID != reg.User.ID {
			t.Fatalf("passkey login opened a session of %+v", pair.User)
		}
		if amr := amrOf(t, pair.AccessToken); !slices.Equal(amr, []string{"webauthn"}) {
			t.Fatalf("amr = %v, want [webauthn]", amr)
		}
		apptest.WantOK(t, e.Me(pair.AccessToken))
		refreshed := e.MustPair(e.Refresh(pair.RefreshToken), "refreshToken")
		if amr := amrOf(t, refreshed.AccessToken); !slices.Equal(amr, []string{"webauthn"}) {
			t.Fatalf("amr after refresh = %v, want [webauthn]", amr)
		}
		if list := listPasskeys(t, e, pair.AccessToken); len(list) != 1 || list[0].LastUsedAt == nil {
			t.Fatalf("passkeys after a login: %+v, want lastUsedAt set", list)
		}

		// Each ceremony answers once: the same assertion again, a new assertion for the used ceremony,
		// and the old assertion for a new ceremony (its challenge) are all refused.
		apptest.WantCode(t, finishLogin(e, id, assertion), "INVALID_PASSKEY", "")
		apptest.WantCode(t, finishLogin(e, id, assert(t, a, loginOptions)), "INVALID_PASSKEY", "")
		other, _ := beginLogin(t, e)
		apptest.WantCode(t, finishLogin(e, other, assertion), "INVALID_PASSKEY", "")
		again := passkeyLogin(t, e, a)

		// A passkey login is a fresh authentication: a second passkey can be registered with it. Its
		// options exclude the first one, and without a name it gets the default.
		options = beginRegistration(t, e, again.AccessToken)
		if err := json.Unmarshal(options, &o); err != nil {
			t.Fatal(err)
		}
		if len(o.ExcludeCredentials) != 1 || o.ExcludeCredentials[0].ID != base64.RawURLEncoding.EncodeToString(a.Credentials()[0].ID) {
			t.Fatalf("excludeCredentials: %s", options)
		}
		if _, _, err := a.Register(options); err == nil {
			t.Fatal("the authenticator registered a second credential despite excludeCredentials")
		}
		// The ceremony the authenticator declined is left open; the next one is the newest (by time).
		e.Clock.Advance(time.Second)
		second := registerPasskey(t, e, again.AccessToken, webauthntest.New(pkOrigin), nil)
		if second.Name != "Passkey" {
			t.Fatalf("default name = %q", second.Name)
		}
		if list := listPasskeys(t, e, again.AccessToken); len(list) != 2 || list[0].ID != pk.ID || list[1].ID != second.ID {
			t.Fatalf("passkeys, oldest first: %+v", list)
		}
	})
}

// Every refused login is INVALID_PASSKEY (one error, never INTERNAL_SERVER_ERROR), and none of them
// breaks the passkey: it still logs in after.
func TestPasskeyLoginRefusals(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		a := webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, a, nil)
		registerPasskey(t, e, bob.AccessToken, webauthntest.New(pkOrigin), nil)
		passkeyLogin(t, e, a) // the stored sign counter is 1 now
		stranger := webauthntest.New(pkOrigin)
		orphanCredential(t, stranger)
		registration, _, err := webauthntest.New(pkOrigin).Register(beginRegistration(t, e, ann.AccessToken))
		if err != nil {
			t.Fatal(err)
		}

		// fresh begins a ceremony and answers it with a's assertion made with opts.
		fresh := func(opts ...webauthntest.Option) apptest.Response {
			id, options := beginLogin(t, e)
			return finishLogin(e, id, assert(t, a, options, opts...))
		}
		// raw begins a ceremony and answers it with credential.
		raw := func(credential any) apptest.Response {
			id, _ := beginLogin(t, e)
			return finishLogin(e, id, credential)
		}
		for _, tc := range []struct {
			name string
			do   func() apptest.Response
		}{
			{"wrong origin", func() apptest.Response { return fresh(webauthntest.WithOrigin("http://evil.example")) }},
			{"wrong challenge", func() apptest.Response {
				return fresh(webauthntest.WithChallenge(base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))))
			}},
			{"assertion of ceremony A sent with ceremony B", func() apptest.Response {
				_, optionsA := beginLogin(t, e)
				idB, _ := beginLogin(t, e)
				return finishLogin(e, idB, assert(t, a, optionsA))
			}},
			{"bad signature", func() apptest.Response { return fresh(webauthntest.WithBadSignature()) }},
			{"user not verified", func() apptest.Response { return fresh(webauthntest.WithoutUserVerification()) }},
			{"user not present", func() apptest.Response { return fresh(webauthntest.WithFlags(webauthntest.FlagUV)) }},
			{"another user's handle", func() apptest.Response {
				return fresh(webauthntest.WithUserHandle([]byte(bob.User.ID)))
			}},
			{"sign counter not increasing (clone)", func() apptest.Response { return fresh(webauthntest.WithCounter(1)) }},
			{"sign counter going back to zero (clone)", func() apptest.Response { return fresh(webauthntest.WithCounter(0)) }},
			{"unknown credential", func() apptest.Response {
				id, options := beginLogin(t, e)
				return finishLogin(e, id, assert(t, stranger, options))
			}},
			{"expired ceremony", func() apptest.Response {
				id, options := beginLogin(t, e)
				e.Clock.Advance(5*time.Minute + time.Second)
				return finishLogin(e, id, assert(t, a, options))
			}},
			{"unknown ceremony", func() apptest.Response {
				_, options := beginLogin(t, e)
				return finishLogin(e, uuid.NewString(), assert(t, a, options))
			}},
			{"not a ceremony id", func() apptest.Response {
				_, options := beginLogin(t, e)
				return finishLogin(e, "not-an-id\x00", assert(t, a, options))
			}},
			{"a registration response", func() apptest.Response { return raw(json.RawMessage(registration)) }},
			{"malformed: a string", func() apptest.Response { return raw("garbage") }},
			{"malformed: a number", func() apptest.Response { return raw(42) }},
			{"malformed: a list", func() apptest.Response { return raw([]any{1, "x"}) }},
			{"malformed: empty object", func() apptest.Response { return raw(map[string]any{}) }},
			{"malformed: no response", func() apptest.Response {
				return raw(map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key"})
			}},
			{"malformed: garbage response", func() apptest.Response {
				return raw(map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": map[string]any{
					"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA", "userHandle": "AAAA"}})
			}},
			{"malformed: bad base64", func() apptest.Response {
				return raw(map[string]any{"id": "!!", "rawId": "!!", "type": "public-key", "response": map[string]any{}})
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				apptest.WantCode(t, tc.do(), "INVALID_PASSKEY", "")
			})
		}
		p := passkeyLogin(t, e, a)
		if p.User.ID != ann.User.ID {
			t.Fatalf("after the refusals, the passkey logged in as %+v", p.User)
		}
	})
}

// Registration refusals: each is INVALID_PASSKEY, except a name too long (BAD_USER_INPUT, checked
// before the ceremony is touched); a failed finish ends the ceremony.
func TestPasskeyRegistrationRefusals(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		annKey := webauthntest.New(pkOrigin)

		r := finishRegistration(e, ann.AccessToken, json.RawMessage(`{}`), nil)
		apptest.WantCode(t, r, "INVALID_PASSKEY", "")

		// A name too long is refused before the ceremony is consumed: the same credential then registers.
		cred, _, err := annKey.Register(beginRegistration(t, e, ann.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		r = finishRegistration(e, ann.AccessToken, json.RawMessage(cred), ptr(strings.Repeat("é", 65)))
		apptest.WantCode(t, r, "BAD_USER_INPUT", "")
		if r.Ext("field") != "name" {
			t.Fatalf("field = %q, want name: %s", r.Ext("field"), r.Raw)
		}
		apptest.WantCode(t, finishRegistration(e, ann.AccessToken, json.RawMessage(cred), ptr("bad\x00name")), "BAD_USER_INPUT", "")
		r = finishRegistration(e, ann.AccessToken, json.RawMessage(cred), ptr(strings.Repeat("é", 64)))
		apptest.WantOK(t, r)
		// ... and only once.
		apptest.WantCode(t, finishRegistration(e, ann.AccessToken, json.RawMessage(cred), nil), "INVALID_PASSKEY", "")

		for _, tc := range []struct {
			name string
			opts []webauthntest.Option
		}{
			{"wrong origin", []webauthntest.Option{webauthntest.WithOrigin("http://evil.example")}},
			{"user not verified", []webauthntest.Option{webauthntest.WithoutUserVerification()}},
			{"wrong challenge", []webauthntest.Option{webauthntest.WithChallenge("MDEyMzQ1Njc4OWFiY2RlZg")}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				options := beginRegistration(t, e, bob.AccessToken)
				bad, _, err := webauthntest.New(pkOrigin).Register(options, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				apptest.WantCode(t, finishRegistration(e, bob.AccessToken, json.RawMessage(bad), nil), "INVALID_PASSKEY", "")
				// The failed finish ended the ceremony: a good answer to it is refused too.
				good, _, err := webauthntest.New(pkOrigin).Register(options)
				if err != nil {
					t.Fatal(err)
				}
				apptest.WantCode(t, finishRegistration(e, bob.AccessToken, json.RawMessage(good), nil), "INVALID_PASSKEY", "")
			})
		}
		for _, malformed := range []any{"garbage", 7, []any{}, map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]any{"clientDataJSON": "e30", "attestationObject": "oA"}}} {
			beginRegistration(t, e, bob.AccessToken)
			apptest.WantCode(t, finishRegistration(e, bob.AccessToken, malformed, nil), "INVALID_PASSKEY", "")
		}

		// Ann's ceremony answered through Bob's account: Bob's newest ceremony has another challenge.
		annOptions := beginRegistration(t, e, ann.AccessToken)
		beginRegistration(t, e, bob.AccessToken)
		stolen, _, err := webauthntest.New(pkOrigin).Register(annOptions)
		if err != nil {
			t.Fatal(err)
		}
		apptest.WantCode(t, finishRegistration(e, bob.AccessToken, json.RawMessage(stolen), nil), "INVALID_PASSKEY", "")

		// A credential id registered already (Ann's) cannot be registered again, by anyone.
		annCred := annKey.Credentials()[0]
		again, _, err := annKey.Register(beginRegistration(t, e, bob.AccessToken), webauthntest.WithCredential(annCred), webauthntest.IgnoreExclusions())
		if err != nil {
			t.Fatal(err)
		}
		apptest.WantCode(t, finishRegistration(e, bob.AccessToken, json.RawMessage(again), nil), "INVALID_PASSKEY", "")
		if p := passkeyLogin(t, e, annKey); p.User.ID != ann.User.ID {
			t.Fatalf("Ann's passkey logged in as %+v", p.User)
		}
		if list := listPasskeys(t, e, bob.AccessToken); len(list) != 0 {
			t.Fatalf("Bob has passkeys after only refusals: %+v", list)
		}

		// An expired ceremony.
		options := beginRegistration(t, e, bob.AccessToken)
		late, _, err := webauthntest.New(pkOrigin).Register(options)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(5*time.Minute + time.Second)
		apptest.WantCode(t, finishRegistration(e, bob.AccessToken, json.RawMessage(late), nil), "INVALID_PASSKEY", "")
	})
}

// deletePasskey needs a fresh authentication, answers false for an id that is not the caller's, and a
// deleted passkey no longer logs in.
func TestDeletePasskey(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		annKey, bobKey := webauthntest.New(pkOrigin), webauthntest.New(pkOrigin)
		annPk := registerPasskey(t, e, ann.AccessToken, annKey, nil)
		registerPasskey(t, e, bob.AccessToken, bobKey, nil)

		del := func(access, id string) apptest.Response {
			return e.Post(deletePkQ, map[string]any{"id": id}, apptest.Bearer(access)...)
		}
		for _, id := range []string{annPk.ID, uuid.NewString(), "not-a-uuid", ""} {
			if r := del(bob.AccessToken, id); r.Raw != `{"data":{"deletePasskey":false}}` {
				t.Fatalf("Bob deleting %q: %s", id, r.Raw)
			}
		}
		if list := listPasskeys(t, e, ann.AccessToken); len(list) != 1 {
			t.Fatalf("Ann's passkeys after Bob's attempts: %+v", list)
		}

		e.Clock.Advance(10*time.Minute + time.Second)
		apptest.WantCode(t, del(ann.AccessToken, annPk.ID), "REAUTHENTICATION_REQUIRED", "")
		fresh := e.Login("ann@example.com", pw)
		if r := del(fresh.AccessToken, annPk.ID); r.Raw != `{"data":{"deletePasskey":true}}` {
			t.Fatalf("delete: %s", r.Raw)
		}
		if r := del(fresh.AccessToken, annPk.ID); r.Raw != `{"data":{"deletePasskey":false}}` {
			t.Fatalf("delete again: %s", r.Raw)
		}
		if list := listPasskeys(t, e, fresh.AccessToken); len(list) != 0 {
			t.Fatalf("passkeys after delete: %+v", list)
		}
		id, options := beginLogin(t, e)
		apptest.WantCode(t, finishLogin(e, id, assert(t, annKey, options)), "INVALID_PASSKEY", "")
		if p := passkeyLogin(t, e, bobKey); p.User.ID != bob.User.ID {
			t.Fatalf("Bob's passkey logged in as %+v", p.User)
		}
	})
}

// N simultaneous finishes of one ceremony with one assertion open exactly one session.
func TestPasskeyLoginConcurrent(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		a := webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, a, nil)
		const n = 8
		for round := range 3 {
			id, options := beginLogin(t, e)
			assertion := assert(t, a, options)
			results := apptest.Concurrently(n, func(int) apptest.Response { return finishLogin(e, id, assertion) })
			ok := 0
			for _, r := range results {
				switch r.Code() {
				case "":
					ok++
				case "INVALID_PASSKEY":
				default:
					t.Fatalf("round %d: unexpected response %s", round, r.Raw)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of %d concurrent finishes succeeded; want exactly 1", round, ok, n)
			}
			var sessions int64
			if err := e.App.Store.Gorm().Model(&models.Session{}).Where("user_id = ? AND amr = ?", ann.User.ID, "webauthn").
				Count(&sessions).Error; err != nil {
				t.Fatal(err)
			}
			if sessions != int64(round+1) {
				t.Fatalf("round %d: %d passkey sessions, want %d", round, sessions, round+1)
			}
		}
	})
}

// A passkey login needs no second factor, even with TOTP on.
func TestPasskeyLoginWithTOTPOn(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		a := webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, a, nil)
		if err := e.App.Store.Gorm().Model(&models.User{}).Where("id = ?", ann.User.ID).
			Updates(map[string]any{"totp_secret": []byte("sealed"), "totp_enabled_at": e.Clock.Now()}).Error; err != nil {
			t.Fatal(err)
		}
		p := passkeyLogin(t, e, a)
		if amr := amrOf(t, p.AccessToken); !slices.Equal(amr, []string{"webauthn"}) {
			t.Fatalf("amr = %v, want [webauthn]", amr)
		}
		var me struct {
			TOTPEnabled bool `json:"totpEnabled"`
		}
		r := e.Post(`{ me { totpEnabled } }`, nil, apptest.Bearer(p.AccessToken)...)
		apptest.WantOK(t, r)
		if r.Decode(t, "me", &me); !me.TOTPEnabled {
			t.Fatal("TOTP is not on for the account")
		}
	})
}

// Under REQUIRE_EMAIL_VERIFICATION a passkey login of an unverified account is EMAIL_NOT_VERIFIED
// (after the assertion was checked: a refused one is still INVALID_PASSKEY).
func TestPasskeyLoginEmailNotVerified(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn, "REQUIRE_EMAIL_VERIFICATION", "true")
		ann := e.Register("ann@example.com", pw)
		a := webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, a, nil)
		id, options := beginLogin(t, e)
		apptest.WantCode(t, finishLogin(e, id, assert(t, a, options, webauthntest.WithBadSignature())), "INVALID_PASSKEY", "")
		id, options = beginLogin(t, e)
		apptest.WantCode(t, finishLogin(e, id, assert(t, a, options)), "EMAIL_NOT_VERIFIED", "")
		if err := e.App.Store.Gorm().Model(&models.User{}).Where("id = ?", ann.User.ID).
			Update("email_verified_at", e.Clock.Now()).Error; err != nil {
			t.Fatal(err)
		}
		passkeyLogin(t, e, a)
	})
}

// beginPasskeyLogin stores a ceremony per call, so it is limited per client address; failed finishes
// count with failed logins (a success takes its count back).
func TestPasskeyLoginRateLimits(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn, "LOGIN_IP_RATE_LIMIT", "3/15m")
		ann := e.Register("ann@example.com", pw)
		a := webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, a, nil)

		passkeyLogin(t, e, a)
		passkeyLogin(t, e, a) // two successes: not counted as failures
		for range 3 {
			apptest.WantCode(t, finishLogin(e, uuid.NewString(), map[string]any{}), "INVALID_PASSKEY", "")
		}
		apptest.WantCode(t, finishLogin(e, uuid.NewString(), map[string]any{}), "RATE_LIMITED", "")
		// The failures are the address's failed logins: a password login from it waits too.
		apptest.WantCode(t, e.Post(loginQ, loginVars("ann@example.com", pw)), "RATE_LIMITED", "")

		beginLogin(t, e) // the third ceremony begun from this address
		apptest.WantCode(t, e.Post(beginLoginQ, nil), "RATE_LIMITED", "")
		var ceremonies int64
		if err := e.App.Store.Gorm().Model(&models.AuthChallenge{}).Where("kind = ?", models.ChallengePasskeyLogin).
			Count(&ceremonies).Error; err != nil {
			t.Fatal(err)
		}
		if ceremonies != 3 {
			t.Fatalf("%d login ceremonies stored, want 3 (none for the refused begin)", ceremonies)
		}
	})
}

// A database outage during a passkey ceremony is SERVICE_UNAVAILABLE, not INVALID_PASSKEY, and does
// not spend the ceremony: the same assertion works once the database is back.
func TestPasskeyDatabaseOutage(t *testing.T) {
	t.Parallel()
	dsn, proxy := testdb.Proxied(t, testdb.Postgres(t))
	e := passkeyEnv(t, dsn, "REQUEST_TIMEOUT", "3s")
	ann := e.Register("ann@example.com", pw)
	a := webauthntest.New(pkOrigin)
	registerPasskey(t, e, ann.AccessToken, a, nil)
	id, options := beginLogin(t, e)
	assertion := assert(t, a, options)

	proxy.Cut()
	apptest.WantCode(t, finishLogin(e, id, assertion), "SERVICE_UNAVAILABLE", "")
	apptest.WantCode(t, e.Post(beginLoginQ, nil), "SERVICE_UNAVAILABLE", "")
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := finishLogin(e, id, assertion)
		if r.Code() == "" {
			if p := e.MustPair(r, "finishPasskeyLogin"); p.User.ID != ann.User.ID {
				t.Fatalf("logged in as %+v", p.User)
			}
			break
		}
		if r.Code() != "SERVICE_UNAVAILABLE" || time.Now().After(deadline) {
			t.Fatalf("after the outage: %s", r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reauthenticate with a passkey: an assertion of a beginPasskeyLogin ceremony renews the session's
// authentication (amr webauthn, same session, fresh auth_time) so that fresh-only fields work again;
// another account's passkey, a used ceremony and a half-given passkey are refused.
func TestReauthenticateWithPasskey(t *testing.T) {
	t.Parallel()
	const reauthPkQ = `mutation($id: ID, $c: JSON) { reauthenticate(challengeId: $id, credential: $c) { ` + apptest.PayloadFields + ` } }`
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := passkeyEnv(t, dsn)
		ann := e.Register("ann@example.com", pw)
		bob := e.Register("bob@example.com", pw)
		annKey, bobKey := webauthntest.New(pkOrigin), webauthntest.New(pkOrigin)
		registerPasskey(t, e, ann.AccessToken, annKey, nil)
		registerPasskey(t, e, bob.AccessToken, bobKey, nil)

		e.Clock.Advance(10*time.Minute + time.Second)
		apptest.WantOK(t, e.Post(passkeysQ, nil, apptest.Bearer(ann.AccessToken)...)) // not a fresh-only field
		r := e.Post(beginRegQ, nil, apptest.Bearer(ann.AccessToken)...)
		apptest.WantCode(t, r, "REAUTHENTICATION_REQUIRED", "")

		// Bob's passkey cannot reauthenticate Ann's session, and the ceremony is spent by the try.
		id, options := beginLogin(t, e)
		bobAssertion := assert(t, bobKey, options)
		apptest.WantCode(t, e.Post(reauthPkQ, map[string]any{"id": id, "c": bobAssertion}, apptest.Bearer(ann.AccessToken)...), "INVALID_PASSKEY", "")
		apptest.WantCode(t, e.Post(reauthPkQ, map[string]any{"id": id, "c": assert(t, annKey, options)}, apptest.Bearer(ann.AccessToken)...), "INVALID_PASSKEY", "")
		// Half a passkey is a bad input, not a refusal of the passkey.
		apptest.WantCode(t, e.Post(reauthPkQ, map[string]any{"id": id}, apptest.Bearer(ann.AccessToken)...), "BAD_USER_INPUT", "")

		id, options = beginLogin(t, e)
		re := e.MustPair(e.Post(reauthPkQ, map[string]any{"id": id, "c": assert(t, annKey, options)}, apptest.Bearer(ann.AccessToken)...), "reauthenticate")
		if amr := amrOf(t, re.AccessToken); !slices.Equal(amr, []string{"webauthn"}) {
			t.Fatalf("amr after passkey reauthentication = %v", amr)
		}
		apptest.WantOK(t, e.Post(beginRegQ, nil, apptest.Bearer(re.AccessToken)...))
		// The same session: it is still listed once, and the old refresh token is retired.
		sessionsOf := func(access string) string {
			sr := e.Post(`{ sessions { id current } }`, nil, apptest.Bearer(access)...)
			apptest.WantOK(t, sr)
			var sessions []struct {
				ID      string `json:"id"`
				Current bool   `json:"current"`
			}
			if sr.Decode(t, "sessions", &sessions); len(sessions) != 1 || !sessions[0].Current {
				t.Fatalf("sessions: %s", sr.Raw)
			}
			return sessions[0].ID
		}
		if before, after := sessionsOf(ann.AccessToken), sessionsOf(re.AccessToken); before != after {
			t.Fatalf("reauthentication moved the session: %s → %s", before, after)
		}
		apptest.WantCode(t, e.Refresh(ann.RefreshToken), "INVALID_REFRESH_TOKEN", "")
		apptest.WantOK(t, e.Refresh(re.RefreshToken))
	})
}
