package token

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWKSMaxAge is how long a verifier may cache the JWKS (its Cache-Control max-age). A rotated key is
// published at least this long before it starts signing.
const JWKSMaxAge = time.Minute

// Key is one Ed25519 signing key of a rotating key set.
//
// A key set rotates by activation time: at any instant the key with the latest ActivateAt not after
// now signs (if no key is active yet, the earliest one signs, so a set whose only key is slightly in
// the future still works). A key whose ActivateAt is in the future is pending: it already verifies
// and is published in the JWKS, so every verifier has it before the first token it signs. A key is
// retired — no longer accepted and no longer published — once its successor (the next key by
// ActivateAt) has been active for longer than the token TTL plus leeway, because no token it signed
// can still be valid by then.
type Key struct {
	// Kid is the RFC 7638 thumbprint of the public key. Empty means compute it; anything else must
	// equal the thumbprint.
	Kid string
	// ActivateAt is when the key becomes the signer. The zero time means it always has been.
	ActivateAt time.Time
	Private    ed25519.PrivateKey
}

// keySet is the issuer's immutable view of its keys, swapped as a whole by SetKeys.
type keySet struct {
	// keys is sorted by activateAt and then kid, so every replica holding the same keys picks the same
	// signer even when two keys share an activation time. It is never empty.
	keys []setKey
}

type setKey struct {
	kid        string
	activateAt time.Time
	signKey    any               // ed25519.PrivateKey or []byte
	verifyKey  any               // ed25519.PublicKey or []byte
	pub        ed25519.PublicKey // published in the JWKS; nil for HS256
}

// NewEdDSAKeySetIssuer returns an EdDSA Issuer over a rotating key set; see Key for the rules. keys
// must not be empty and must not repeat a kid; their order does not matter.
func NewEdDSAKeySetIssuer(keys []Key, opts Options) (*Issuer, error) {
	set, err := newEdDSAKeySet(keys)
	if err != nil {
		return nil, err
	}
	return newIssuer(algEdDSA, jwt.SigningMethodEdDSA, set, opts)
}

// SetKeys atomically replaces the key set of an EdDSA issuer (validated as by NewEdDSAKeySetIssuer).
// Issue and Verify calls running at the same time use either the old set or the new one, never a mix.
// A key left out of keys stops verifying at once: removing a key file is how a compromised key is
// revoked. On error the current set is kept.
func (i *Issuer) SetKeys(keys []Key) error {
	if i.alg != algEdDSA {
		return fmt.Errorf("token: SetKeys needs an EdDSA issuer, this one is %s", i.alg)
	}
	set, err := newEdDSAKeySet(keys)
	if err != nil {
		return err
	}
	i.keys.Store(set)
	return nil
}

// sameAs reports whether s holds exactly keys (by kid and activation time); keys must be sorted as
// LoadKeyDir returns them.
func (s *keySet) sameAs(keys []Key) bool {
	if len(s.keys) != len(keys) {
		return false
	}
	for n, k := range keys {
		if s.keys[n].kid != k.Kid || !s.keys[n].activateAt.Equal(k.ActivateAt) {
			return false
		}
	}
	return true
}

func newEdDSAKeySet(keys []Key) (*keySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: the key set is empty")
	}
	set := &keySet{keys: make([]setKey, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for n, k := range keys {
		priv, pub, err := checkEd25519Key(k.Private)
		if err != nil {
			if len(keys) == 1 {
				return nil, fmt.Errorf("token: %w", err)
			}
			return nil, fmt.Errorf("token: key %d (kid %q): %w", n, k.Kid, err)
		}
		kid := ed25519Thumbprint(pub)
		if k.Kid != "" && k.Kid != kid {
			return nil, fmt.Errorf("token: key %d: kid %q is not the key's thumbprint %q", n, k.Kid, kid)
		}
		if seen[kid] {
			return nil, fmt.Errorf("token: key %s appears twice in the key set", kid)
		}
		seen[kid] = true
		set.keys = append(set.keys, setKey{kid: kid, activateAt: k.ActivateAt, signKey: priv, verifyKey: pub, pub: pub})
	}
	slices.SortFunc(set.keys, func(a, b setKey) int {
		return cmp.Or(a.activateAt.Compare(b.activateAt), cmp.Compare(a.kid, b.kid))
	})
	return set, nil
}

// retireAfter is how long a key stays acceptable after its successor starts signing: a token signed
// just before the switch lives TTL and is accepted for a further leeway.
func (i *Issuer) retireAfter() time.Duration { return i.ttl + i.leeway }

// signer returns the key with the latest activation time not after now, or the earliest key when none
// is active yet.
func (s *keySet) signer(now time.Time) *setKey {
	idx := 0
	for n := range s.keys {
		if s.keys[n].activateAt.After(now) {
			break
		}
		idx = n
	}
	return &s.keys[idx]
}

// retired reports whether keys[n] no longer verifies: its successor has been active for longer than
// grace. The signer and pending keys have no active successor, so they are never retired.
func (s *keySet) retired(n int, now time.Time, grace time.Duration) bool {
	return n+1 < len(s.keys) && retiredSince(s.keys[n+1].activateAt, now, grace)
}

// retiredSince reports whether a key whose successor activates at next is retired at now. PruneKeyDir
// uses it too, so a file is deleted only when no issuer would still accept its key.
func retiredSince(next, now time.Time, grace time.Duration) bool { return now.After(next.Add(grace)) }

func (s *keySet) verifyKey(kid string, now time.Time, grace time.Duration) (any, bool) {
	for n := range s.keys {
		if s.keys[n].kid == kid {
			if s.retired(n, now, grace) {
				return nil, false
			}
			return s.keys[n].verifyKey, true
		}
	}
	return nil, false
}

func (s *keySet) published(now time.Time, grace time.Duration) []publishedKey {
	var out []publishedKey
	for n, k := range s.keys {
		if k.pub != nil && !s.retired(n, now, grace) {
			out = append(out, publishedKey{kid: k.kid, pub: k.pub})
		}
	}
	return out
}
