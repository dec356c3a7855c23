// Package webauthntest is a software WebAuthn authenticator (and the browser around it) for Go tests:
// given the options JSON a relying party hands out (PublicKeyCredentialCreationOptions or
// PublicKeyCredentialRequestOptions, as parseCreationOptionsFromJSON / parseRequestOptionsFromJSON
// take them), it answers with the JSON that a browser's credential.toJSON() produces. Its credentials
// are discoverable ES256 (P-256) keys that keep the user handle, registered with attestation "none".
// Options make it misbehave the ways a test needs: another origin, flags without user verification,
// a chosen sign counter, a corrupted signature, another user handle.
package webauthntest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator data flags (WebAuthn §6.1).
const (
	FlagUP byte = 0x01 // user present
	FlagUV byte = 0x04 // user verified
	FlagAT byte = 0x40 // attested credential data included
)

// coseES256 is the COSE algorithm identifier of ECDSA with P-256 and SHA-256.
const coseES256 = -7

var b64 = base64.RawURLEncoding

// Credential is a key pair the Authenticator holds.
type Credential struct {
	ID         []byte
	RPID       string
	UserHandle []byte
	Key        *ecdsa.PrivateKey
	Counter    uint32 // the last sign counter used
}

// Authenticator is a platform authenticator with user verification, behind a browser at Origin. It
// is safe for concurrent use.
type Authenticator struct {
	Origin string

	mu    sync.Mutex
	creds []*Credential
}

// New returns an authenticator with no credentials, used from origin (such as "http://localhost:8080").
func New(origin string) *Authenticator { return &Authenticator{Origin: origin} }

// Credentials returns the credentials made so far, oldest first.
func (a *Authenticator) Credentials() []*Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.creds)
}

// config is what the Options set.
type config struct {
	origin        string
	flags         *byte
	counter       *uint32
	badSignature  bool
	credential    *Credential
	userHandle    []byte
	challenge     string
	ignoreExclude bool
}

// Option changes one response.
type Option func(*config)

// WithOrigin makes the browser report another origin in clientDataJSON.
func WithOrigin(origin string) Option { return func(c *config) { c.origin = origin } }

// WithFlags sets the authenticator data flags (FlagAT is added to registrations regardless).
func WithFlags(flags byte) Option { return func(c *config) { c.flags = &flags } }

// WithoutUserVerification is WithFlags(FlagUP): the user was present but not verified.
func WithoutUserVerification() Option { return WithFlags(FlagUP) }

// WithCounter signs with this counter instead of the next one (and keeps it as the last used).
func WithCounter(n uint32) Option { return func(c *config) { c.counter = &n } }

// WithBadSignature signs something else than what the relying party checks.
func WithBadSignature() Option { return func(c *config) { c.badSignature = true } }

// WithCredential uses this credential: for an assertion, instead of the newest one for the RP id; for
// a registration, instead of a new key pair (to register the same credential id again).
func WithCredential(cred *Credential) Option { return func(c *config) { c.credential = cred } }

// WithUserHandle reports another user handle in an assertion.
func WithUserHandle(h []byte) Option { return func(c *config) { c.userHandle = h } }

// WithChallenge answers another challenge (base64url) than the options'.
func WithChallenge(challenge string) Option { return func(c *config) { c.challenge = challenge } }

// IgnoreExclusions registers even when the options exclude one of the authenticator's credentials
// (a browser would refuse with InvalidStateError).
func IgnoreExclusions() Option { return func(c *config) { c.ignoreExclude = true } }

// ErrExcluded is what Register returns when the options exclude a credential it holds.
var ErrExcluded = errors.New("webauthntest: the authenticator holds an excluded credential")

type descriptor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type creationOptions struct {
	RP struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rp"`
	User struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	} `json:"user"`
	Challenge        string `json:"challenge"`
	PubKeyCredParams []struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	} `json:"pubKeyCredParams"`
	ExcludeCredentials []descriptor `json:"excludeCredentials"`
}

type requestOptions struct {
	Challenge        string       `json:"challenge"`
	RPID             string       `json:"rpId"`
	AllowCredentials []descriptor `json:"allowCredentials"`
}

// coseKey is an EC2 public key in COSE form, keys in CTAP2 canonical order.
type coseKey struct {
	Kty int    `cbor:"1,keyasint"`
	Alg int    `cbor:"3,keyasint"`
	Crv int    `cbor:"-1,keyasint"`
	X   []byte `cbor:"-2,keyasint"`
	Y   []byte `cbor:"-3,keyasint"`
}

type attestationObject struct {
	Fmt      string         `cbor:"fmt"`
	AttStmt  map[string]any `cbor:"attStmt"`
	AuthData []byte         `cbor:"authData"`
}

func (a *Authenticator) apply(opts []Option) config {
	c := config{origin: a.Origin}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Register answers PublicKeyCredentialCreationOptions (JSON) with a new discoverable credential, as
// the JSON of credential.toJSON(), and returns the credential too.
func (a *Authenticator) Register(optionsJSON []byte, opts ...Option) ([]byte, *Credential, error) {
	var o creationOptions
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return nil, nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	if !slices.ContainsFunc(o.PubKeyCredParams, func(p struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	}) bool {
		return p.Type == "public-key" && p.Alg == coseES256
	}) {
		return nil, nil, errors.New("webauthntest: the options do not allow ES256")
	}
	userHandle, err := b64.DecodeString(o.User.ID)
	if err != nil || len(userHandle) == 0 {
		return nil, nil, fmt.Errorf("webauthntest: user.id is not base64url: %q", o.User.ID)
	}
	c := a.apply(opts)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !c.ignoreExclude {
		for _, d := range o.ExcludeCredentials {
			for _, cred := range a.creds {
				if d.ID == b64.EncodeToString(cred.ID) {
					return nil, nil, ErrExcluded
				}
			}
		}
	}
	cred := c.credential
	if cred == nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		id := make([]byte, 32)
		if _, err := rand.Read(id); err != nil {
			return nil, nil, err
		}
		cred = &Credential{ID: id, RPID: o.RP.ID, UserHandle: userHandle, Key: key}
		a.creds = append(a.creds, cred)
	}
	flags := FlagUP | FlagUV
	if c.flags != nil {
		flags = *c.flags
	}
	counter := cred.Counter
	if c.counter != nil {
		counter = *c.counter
		cred.Counter = counter
	}
	point, err := cred.Key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, nil, err
	}
	pub, err := cbor.Marshal(coseKey{Kty: 2, Alg: coseES256, Crv: 1, X: point[1:33], Y: point[33:65]})
	if err != nil {
		return nil, nil, err
	}
	authData := authenticatorData(o.RP.ID, flags|FlagAT, counter)
	authData = binary.BigEndian.AppendUint16(append(authData, make([]byte, 16)...), uint16(len(cred.ID))) // AAGUID zero
	authData = append(append(authData, cred.ID...), pub...)
	attObj, err := cbor.Marshal(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: authData})
	if err != nil {
		return nil, nil, err
	}
	challenge := o.Challenge
	if c.challenge != "" {
		challenge = c.challenge
	}
	spki, err := x509.MarshalPKIXPublicKey(&cred.Key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(map[string]any{
		"id":    b64.EncodeToString(cred.ID),
		"rawId": b64.EncodeToString(cred.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":     b64.EncodeToString(clientData("webauthn.create", challenge, c.origin)),
			"attestationObject":  b64.EncodeToString(attObj),
			"authenticatorData":  b64.EncodeToString(authData),
			"publicKey":          b64.EncodeToString(spki),
			"publicKeyAlgorithm": coseES256,
			"transports":         []string{"internal"},
		},
		"clientExtensionResults":  map[string]any{},
		"authenticatorAttachment": "platform",
	})
	return out, cred, err
}

// Assert answers PublicKeyCredentialRequestOptions (JSON) with an assertion of the newest credential
// for the options' RP id (one of allowCredentials, when the options list some), as the JSON of
// credential.toJSON(). The sign counter goes up by one unless WithCounter says otherwise.
func (a *Authenticator) Assert(optionsJSON []byte, opts ...Option) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	c := a.apply(opts)
	a.mu.Lock()
	defer a.mu.Unlock()
	cred := c.credential
	for i := len(a.creds) - 1; cred == nil && i >= 0; i-- {
		cand := a.creds[i]
		if cand.RPID != o.RPID {
			continue
		}
		if len(o.AllowCredentials) == 0 || slices.ContainsFunc(o.AllowCredentials, func(d descriptor) bool { return d.ID == b64.EncodeToString(cand.ID) }) {
			cred = cand
		}
	}
	if cred == nil {
		return nil, errors.New("webauthntest: no credential for these options")
	}
	flags := FlagUP | FlagUV
	if c.flags != nil {
		flags = *c.flags
	}
	cred.Counter++
	if c.counter != nil {
		cred.Counter = *c.counter
	}
	challenge := o.Challenge
	if c.challenge != "" {
		challenge = c.challenge
	}
	authData := authenticatorData(o.RPID, flags, cred.Counter)
	cdj := clientData("webauthn.get", challenge, c.origin)
	hash := sha256.Sum256(cdj)
	signed := append(slices.Clone(authData), hash[:]...)
	if c.badSignature {
		signed[len(signed)-1] ^= 0xff
	}
	digest := sha256.Sum256(signed)
	sig, err := ecdsa.SignASN1(rand.Reader, cred.Key, digest[:])
	if err != nil {
		return nil, err
	}
	userHandle := cred.UserHandle
	if c.userHandle != nil {
		userHandle = c.userHandle
	}
	return json.Marshal(map[string]any{
		"id":    b64.EncodeToString(cred.ID),
		"rawId": b64.EncodeToString(cred.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"authenticatorData": b64.EncodeToString(authData),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(userHandle),
		},
		"clientExtensionResults":  map[string]any{},
		"authenticatorAttachment": "platform",
	})
}

// authenticatorData is rpIdHash, flags and the sign counter (WebAuthn §6.1).
func authenticatorData(rpID string, flags byte, counter uint32) []byte {
	h := sha256.Sum256([]byte(rpID))
	return binary.BigEndian.AppendUint32(append(h[:], flags), counter)
}

// clientData is the clientDataJSON a browser writes, members in the order it writes them.
func clientData(typ, challenge, origin string) []byte {
	var buf bytes.Buffer
	enc := func(v string) []byte { b, _ := json.Marshal(v); return b }
	buf.WriteString(`{"type":`)
	buf.Write(enc(typ))
	buf.WriteString(`,"challenge":`)
	buf.Write(enc(challenge))
	buf.WriteString(`,"origin":`)
	buf.Write(enc(origin))
	buf.WriteString(`,"crossOrigin":false}`)
	return buf.Bytes()
}
