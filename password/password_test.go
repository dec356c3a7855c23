package password

import (
	"errors"
	"strings"
	"testing"
)

var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h, err := Hash("correct horse", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("not a PHC argon2id string: %q", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	h2, _ := Hash("correct horse", cheap)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		name       string
		pw         string
		want       Params
		ok, rehash bool
	}{
		{"right password", "correct horse", cheap, true, false},
		{"wrong password", "correct horsf", cheap, false, false},
		{"empty password", "", cheap, false, false},
		{"parameters changed", "correct horse", Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
		{"time changed", "correct horse", Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := Verify(tc.pw, h, tc.want)
			if err != nil || ok != tc.ok || rehash != tc.rehash {
				t.Fatalf("Verify = %v, %v, %v; want %v, %v, nil", ok, rehash, err, tc.ok, tc.rehash)
			}
		})
	}
}

func TestDefaultIsOWASP(t *testing.T) {
	t.Parallel()
	if Default.Memory != 19456 || Default.Time != 2 || Default.Threads != 1 {
		t.Fatalf("Default = %+v, want m=19456 t=2 p=1", Default)
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0",
	} {
		if _, _, err := Verify("x", enc, cheap); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) err = %v, want ErrMalformed", enc, err)
		}
	}
}
