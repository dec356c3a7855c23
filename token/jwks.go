package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
)

type publishedKey struct {
	kid string
	pub ed25519.PublicKey
}

// jwk is an RFC 8037 OKP public key. There is no "d" field, so the private key cannot leak through it.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// JWKS returns the RFC 7517 JSON Web Key Set of the public verification keys, ready to serve at
// /.well-known/jwks.json. An HS256 issuer returns {"keys":[]}: its key is a shared secret and is never
// published. With a rotating key set it lists every key not yet retired, pending ones included, so
// clients can fetch a key before the first token signed with it arrives. It is computed on each call
// (a few small keys), so it follows SetKeys and the passage of time. The returned slice is the caller's
// own copy.
func (i *Issuer) JWKS() []byte {
	return buildJWKS(i.keys.Load().published(i.now(), i.retireAfter()))
}

func buildJWKS(keys []publishedKey) []byte {
	// A non-nil slice so an empty set encodes as [] rather than null, which JWKS clients reject.
	set := jwkSet{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub),
			Kid: k.kid, Alg: algEdDSA, Use: "sig",
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		// Only strings are marshalled, so this cannot happen.
		panic("token: marshal JWKS: " + err.Error())
	}
	return b
}

// ed25519Thumbprint is the RFC 7638 thumbprint of an Ed25519 JWK (RFC 8037 §A.3): SHA-256 over the
// required members in lexicographic order with no whitespace. The base64url alphabet needs no JSON
// escaping, so plain concatenation yields the canonical form.
func ed25519Thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
