package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeClock is safe for concurrent use, unlike the *time.Time the other tests share.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.Set(t); return c }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

const testLeeway = 5 * time.Second

func clockOptions(c *fakeClock) Options {
	return Options{Issuer: testIss, Audience: testAud, TTL: testTTL, Leeway: testLeeway, Now: c.Now}
}

// jwksKids returns the kids the issuer publishes, in order.
func jwksKids(t *testing.T, i *Issuer) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(i.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	kids := []string{}
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func tokenKid(t *testing.T, raw string) string {
	t.Helper()
	kid, _ := decodeSegment(t, strings.Split(raw, ".")[0])["kid"].(string)
	return kid
}

func issue(t *testing.T, i *Issuer) string {
	t.Helper()
	raw, _, err := i.Issue("user-1", "sess-1", "USER")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestKeyRotation walks one rotation through a key directory: A signs; B is published in advance and
// verifies while pending; B takes over by itself at its activation time while A's tokens stay valid;
// A is retired (and pruned) only once none of its tokens can still be valid.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	clock := newFakeClock(t0)
	pathA, kidA, err := GenerateKeyFile(dir, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewEdDSAKeySetIssuer(keys, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	tokA := issue(t, iss)
	if tokenKid(t, tokA) != kidA || iss.KeyID() != kidA {
		t.Fatalf("token kid %s, KeyID %s, want A %s", tokenKid(t, tokA), iss.KeyID(), kidA)
	}
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kidA}) {
		t.Fatalf("JWKS = %v", got)
	}

	// Rotate: B activates in 10 minutes.
	activateB := t0.Add(10 * time.Minute)
	pathB, kidB, err := GenerateKeyFile(dir, activateB)
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := iss.ReloadKeyDir(dir); err != nil || !changed {
		t.Fatalf("reload: changed %v, err %v", changed, err)
	}
	if _, changed, err := iss.ReloadKeyDir(dir); err != nil || changed {
		t.Fatalf("second reload: changed %v, err %v", changed, err)
	}
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kidA, kidB}) {
		t.Fatalf("JWKS with B pending = %v, want [A B]", got)
	}
	if kid := tokenKid(t, issue(t, iss)); kid != kidA {
		t.Fatalf("B is pending but signed (kid %s)", kid)
	}
	// A pending key already verifies: a replica whose clock is a little ahead may sign with it.
	keyB := keys2map(t, dir)[kidB]
	early := sign(t, jwt.SigningMethodEdDSA, keyB, goodHeader(kidB), goodClaims(t0))
	if _, err := iss.Verify(early); err != nil {
		t.Fatalf("token from pending B: %v", err)
	}
	if removed, err := PruneKeyDir(dir, clock.Now(), testTTL, testLeeway); err != nil || len(removed) != 0 {
		t.Fatalf("prune with B pending removed %v (err %v)", removed, err)
	}

	// A signs until the second B activates; then B signs with no reload.
	clock.Set(activateB.Add(-time.Second))
	lastA := issue(t, iss)
	if tokenKid(t, lastA) != kidA {
		t.Fatal("A stopped signing early")
	}
	clock.Set(activateB)
	tokB := issue(t, iss)
	if tokenKid(t, tokB) != kidB || iss.KeyID() != kidB {
		t.Fatalf("after activation token kid %s, KeyID %s, want B %s", tokenKid(t, tokB), iss.KeyID(), kidB)
	}
	for _, tok := range []string{tokA, lastA, tokB} {
		if _, err := iss.Verify(tok); err != nil {
			t.Fatalf("after activation: %v", err)
		}
	}
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kidA, kidB}) {
		t.Fatalf("JWKS after activation = %v, want [A B]", got)
	}

	// The last A token is valid until its exp plus leeway, and A must outlive it.
	clock.Set(activateB.Add(testTTL + testLeeway - 2*time.Second))
	if _, err := iss.Verify(lastA); err != nil {
		t.Fatalf("last A token near the end of its life: %v", err)
	}
	clock.Set(activateB.Add(testTTL + testLeeway))
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kidA, kidB}) {
		t.Fatalf("JWKS at the retirement boundary = %v, want [A B]", got)
	}
	if removed, err := PruneKeyDir(dir, clock.Now(), testTTL, testLeeway); err != nil || len(removed) != 0 {
		t.Fatalf("prune at the boundary removed %v (err %v)", removed, err)
	}

	// Past the boundary A is retired: not published, its tokens invalid (not merely expired).
	clock.Set(activateB.Add(testTTL + testLeeway + time.Second))
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kidB}) {
		t.Fatalf("JWKS after retirement = %v, want [B]", got)
	}
	forged := sign(t, jwt.SigningMethodEdDSA, keys2map(t, dir)[kidA], goodHeader(kidA), goodClaims(clock.Now()))
	for _, tok := range []string{lastA, forged} {
		if _, err := iss.Verify(tok); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired) {
			t.Fatalf("A token after retirement: %v, want ErrInvalid", err)
		}
	}
	if _, err := iss.Verify(issue(t, iss)); err != nil {
		t.Fatal(err)
	}

	removed, err := PruneKeyDir(dir, clock.Now(), testTTL, testLeeway)
	if err != nil || !slices.Equal(removed, []string{pathA}) {
		t.Fatalf("prune removed %v (err %v), want [%s]", removed, err, pathA)
	}
	if names := fileNames(t, dir); !slices.Equal(names, []string{filepath.Base(pathB)}) {
		t.Fatalf("dir holds %v, want only B", names)
	}
	// B is the signer with nothing after it: it is never pruned, however late.
	if removed, err := PruneKeyDir(dir, clock.Now().Add(1000*time.Hour), testTTL, testLeeway); err != nil || len(removed) != 0 {
		t.Fatalf("prune removed the signer: %v (err %v)", removed, err)
	}
	if _, changed, err := iss.ReloadKeyDir(dir); err != nil || !changed {
		t.Fatalf("reload after prune: changed %v, err %v", changed, err)
	}
	if raw := issue(t, iss); tokenKid(t, raw) != kidB {
		t.Fatal("B stopped signing after the prune")
	} else if _, err := iss.Verify(raw); err != nil {
		t.Fatal(err)
	}
}

func keys2map(t *testing.T, dir string) map[string]any {
	t.Helper()
	keys, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	for _, k := range keys {
		m[k.Kid] = k.Private
	}
	return m
}

func TestKeySetSigner(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	a := Key{ActivateAt: t0.Add(time.Hour), Private: testEdKey(1)}
	b := Key{ActivateAt: t0.Add(2 * time.Hour), Private: testEdKey(2)}
	c := Key{ActivateAt: t0.Add(3 * time.Hour), Private: testEdKey(3)}
	kid := func(k Key) string { return ed25519Thumbprint(k.Private.Public().(ed25519.PublicKey)) }

	// Given in any order; when nothing is active yet the earliest key signs.
	iss, err := NewEdDSAKeySetIssuer([]Key{c, a, b}, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	if iss.KeyID() != kid(a) {
		t.Fatalf("nothing active: signer %s, want the earliest", iss.KeyID())
	}
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kid(a), kid(b), kid(c)}) {
		t.Fatalf("JWKS = %v", got)
	}
	// Jumping past several activations picks the latest active key, and retires all but its predecessor
	// once the grace has passed for each.
	clock.Set(t0.Add(3*time.Hour + time.Minute))
	if iss.KeyID() != kid(c) {
		t.Fatalf("signer %s, want C", iss.KeyID())
	}
	if got := jwksKids(t, iss); !slices.Equal(got, []string{kid(b), kid(c)}) {
		t.Fatalf("JWKS = %v, want [B C]", got)
	}

	// Equal activation times: the order (and so the signer) is by kid, the same on every replica.
	d := Key{ActivateAt: t0, Private: testEdKey(4)}
	e := Key{ActivateAt: t0, Private: testEdKey(5)}
	i1, _ := NewEdDSAKeySetIssuer([]Key{d, e}, clockOptions(clock))
	i2, _ := NewEdDSAKeySetIssuer([]Key{e, d}, clockOptions(clock))
	if i1.KeyID() != i2.KeyID() || i1.KeyID() != max(kid(d), kid(e)) {
		t.Fatalf("tie: %s vs %s", i1.KeyID(), i2.KeyID())
	}
}

func TestSetKeysValidation(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	a := Key{Private: testEdKey(1)}
	iss, err := NewEdDSAKeySetIssuer([]Key{a}, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	before := iss.KeyID()
	bad := append(testEdKey(2), nil...)
	bad[40] ^= 1
	for name, keys := range map[string][]Key{
		"empty":        nil,
		"duplicate":    {a, {ActivateAt: t0, Private: testEdKey(1)}},
		"wrong kid":    {{Kid: "not-the-thumbprint", Private: testEdKey(2)}},
		"short key":    {{Private: testEdKey(2)[:32]}},
		"inconsistent": {{Private: bad}},
	} {
		if err := iss.SetKeys(keys); err == nil {
			t.Errorf("%s: SetKeys accepted it", name)
		}
		if _, err := NewEdDSAKeySetIssuer(keys, clockOptions(clock)); err == nil {
			t.Errorf("%s: NewEdDSAKeySetIssuer accepted it", name)
		}
	}
	if iss.KeyID() != before {
		t.Fatal("a failed SetKeys changed the set")
	}
	hs, _ := newHS(t, new(time.Time), 0)
	if err := hs.SetKeys([]Key{a}); err == nil {
		t.Fatal("SetKeys on an HS256 issuer")
	}
	// A single-key issuer can be switched to a key set; a key left out stops verifying at once.
	single, _ := newEd(t, new(time.Time), 0)
	old := issue(t, single)
	if err := single.SetKeys([]Key{{Private: testEdKey(7)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := single.Verify(old); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a removed key: %v", err)
	}
}

// TestSetKeysConcurrent swaps key sets while Issue, Verify and JWKS run and the clock moves (go test -race).
func TestSetKeysConcurrent(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(t0)
	a := Key{ActivateAt: t0.Add(-time.Hour), Private: testEdKey(1)}
	pending := Key{ActivateAt: t0.Add(time.Hour), Private: testEdKey(2)}
	active := Key{ActivateAt: t0.Add(-time.Minute), Private: testEdKey(2)}
	iss, err := NewEdDSAKeySetIssuer([]Key{a}, clockOptions(clock))
	if err != nil {
		t.Fatal(err)
	}
	// Every set holds both keys, unretired throughout, so every token must verify whichever set it meets.
	sets := [][]Key{{a, pending}, {a, active}, {active, a}}
	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := iss.SetKeys(sets[n%len(sets)]); err != nil {
				t.Error(err)
				return
			}
			clock.Advance(time.Microsecond)
		}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				raw, _, err := iss.Issue("u", "s", "r")
				if err == nil {
					_, err = iss.Verify(raw)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !json.Valid(iss.JWKS()) || iss.KeyID() == "" {
					t.Error("bad JWKS or kid")
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	swapper.Wait()
}

// A set is the same as a key list only with the same kids and activation times; one unusable key is
// refused with an error that needs no index.
func TestKeySetSameAsAndBadSingleKey(t *testing.T) {
	t.Parallel()
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	set, err := newEdDSAKeySet([]Key{{Private: a, ActivateAt: at}})
	if err != nil {
		t.Fatal(err)
	}
	kid := set.keys[0].kid
	if !set.sameAs([]Key{{Kid: kid, ActivateAt: at}}) {
		t.Error("the same key list is not sameAs")
	}
	if set.sameAs([]Key{{Kid: kid, ActivateAt: at.Add(time.Second)}}) {
		t.Error("another activation time is sameAs")
	}
	if set.sameAs(nil) {
		t.Error("an empty list is sameAs")
	}
	if _, err := newEdDSAKeySet([]Key{{Private: ed25519.PrivateKey("short")}}); err == nil || strings.Contains(err.Error(), "key 0") {
		t.Errorf("one bad key: %v, want an error without an index", err)
	}
}
