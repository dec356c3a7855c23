package password

import "testing"

// Password hashing and verification at the production cost (argon2id m=19456 KiB, t=2, p=1):
//
//	go test -run='^$' -bench=. -benchmem ./password/
func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple", Default); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := Hash("correct horse battery staple", Default)
	for b.Loop() {
		if ok, _, err := Verify("correct horse battery staple", h, Default); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
