package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func TestJWKS(t *testing.T) {
	t.Parallel()
	now := t0
	ed, key := newEd(t, &now, 0)
	hs, secret := newHS(t, &now, 0)

	t.Run("EdDSA publishes the public key under the token kid", func(t *testing.T) {
		raw, _, err := ed.Issue("u", "s", "r")
		if err != nil {
			t.Fatal(err)
		}
		headerKid := decodeSegment(t, strings.Split(raw, ".")[0])["kid"]

		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(ed.JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 {
			t.Fatalf("keys = %v", set.Keys)
		}
		k := set.Keys[0]
		want := map[string]any{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": headerKid}
		for name, v := range want {
			if k[name] != v {
				t.Errorf("%s = %v, want %v", name, k[name], v)
			}
		}
		if len(k) != 6 {
			t.Errorf("unexpected members (a private part?): %v", k)
		}
		x, err := base64.RawURLEncoding.DecodeString(k["x"].(string))
		if err != nil || !bytes.Equal(x, key.Public().(ed25519.PublicKey)) {
			t.Errorf("x = %v (%v), want the public key", k["x"], err)
		}
		if headerKid != ed.KeyID() || headerKid != ed25519Thumbprint(key.Public().(ed25519.PublicKey)) {
			t.Errorf("kid %v, KeyID %q", headerKid, ed.KeyID())
		}
	})

	t.Run("HS256 publishes nothing", func(t *testing.T) {
		if got := string(hs.JWKS()); got != `{"keys":[]}` {
			t.Errorf("JWKS = %s", got)
		}
		if strings.Contains(hs.KeyID(), hex.EncodeToString(secret[:8])) || !strings.HasPrefix(hs.KeyID(), "hs256-") ||
			len(hs.KeyID()) != len("hs256-")+16 {
			t.Errorf("kid = %q", hs.KeyID())
		}
		other, err := NewHS256Issuer(testSecret(3), testOptions(&now, 0))
		if err != nil {
			t.Fatal(err)
		}
		if other.KeyID() == hs.KeyID() {
			t.Error("different secrets share a kid")
		}
	})

	t.Run("JWKS returns a copy", func(t *testing.T) {
		b := ed.JWKS()
		clear(b)
		if !json.Valid(ed.JWKS()) {
			t.Error("caller mutation reached the issuer")
		}
	})
}

// Known answer from RFC 8037 Appendix A.3.
func TestEd25519ThumbprintRFC8037(t *testing.T) {
	t.Parallel()
	d, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	key := ed25519.NewKeyFromSeed(d)
	if x := base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)); x != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("x = %s", x)
	}
	now := t0
	i, err := NewEdDSAIssuer(key, testOptions(&now, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := i.KeyID(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("kid = %s, want %s", got, want)
	}
}
