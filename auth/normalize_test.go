package auth

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

// canonicalEmailCases are inputs NormalizeEmail accepts, with their canonical form. Inputs that a
// reader cannot tell apart share a want.
var canonicalEmailCases = []struct{ name, in, want string }{
	// Plain ASCII: the behaviour from before canonicalisation.
	{"ascii/plain", "alice@example.com", "alice@example.com"},
	{"ascii/trim and lower-case", "  Alice@Example.COM ", "alice@example.com"},
	{"ascii/tab and newline trimmed", "\tALICE@EXAMPLE.COM\n", "alice@example.com"},
	{"ascii/dots and tag", "A.B+Tag@Sub.Example.ORG", "a.b+tag@sub.example.org"},
	{"ascii/atext specials", "!#$%&'*+/=?^_`{|}~@example.com", "!#$%&'*+/=?^_`{|}~@example.com"},
	{"ascii/numeric domain", "alice@1.2.3.4", "alice@1.2.3.4"},
	{"ascii/exactly 254 bytes", strings.Repeat("a", 242) + "@example.com", strings.Repeat("a", 242) + "@example.com"},
	{"idna/257-byte A-label input, 251-byte result", strings.Repeat("a", 235) + "@xn--bcher-kva.example", strings.Repeat("a", 235) + "@b\u00FCcher.example"},
	{"ascii/long white space is trimmed before the input limit", strings.Repeat(" ", 2000) + "alice@example.com", "alice@example.com"},

	// Look-alikes of alice@example.com.
	{"alike/upper case", "ALICE@EXAMPLE.COM", "alice@example.com"},
	{"alike/fullwidth with fullwidth full stop", "ａｌｉｃｅ@ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"},
	{"alike/fullwidth upper case", "ＡＬＩＣＥ@ＥＸＡＭＰＬＥ．ＣＯＭ", "alice@example.com"},
	{"alike/fullwidth local part only", "ａｌｉｃｅ@example.com", "alice@example.com"},
	{"alike/fullwidth domain only", "alice@ｅｘａｍｐｌｅ.ｃｏｍ", "alice@example.com"},
	{"alike/ideographic full stop", "alice@example\u3002com", "alice@example.com"},
	{"alike/halfwidth ideographic full stop", "alice@example\uFF61com", "alice@example.com"},

	// Canonically equivalent local parts.
	{"nfc/josé NFC", "jos\u00E9@example.com", "jos\u00E9@example.com"},
	{"nfc/josé NFD", "jose\u0301@example.com", "jos\u00E9@example.com"},
	{"nfc/JOSÉ NFD upper case", "JOSE\u0301@EXAMPLE.COM", "jos\u00E9@example.com"},
	{"nfc/Kelvin sign lower-cases to k", "\u212Aim@example.com", "kim@example.com"},
	{"nfc/Angstrom sign", "\u212Bsa@example.com", "\u00E5sa@example.com"},

	// Internationalised domains: one canonical Unicode form.
	{"idna/bücher NFC", "user@b\u00FCcher.example", "user@b\u00FCcher.example"},
	{"idna/bücher NFD", "user@bu\u0308cher.example", "user@b\u00FCcher.example"},
	{"idna/BÜCHER upper case", "user@B\u00DCCHER.example", "user@b\u00FCcher.example"},
	{"idna/BÜCHER NFD upper case", "user@BU\u0308CHER.EXAMPLE", "user@b\u00FCcher.example"},
	{"idna/A-label", "user@xn--bcher-kva.example", "user@b\u00FCcher.example"},
	{"idna/A-label upper case", "USER@XN--BCHER-KVA.EXAMPLE", "user@b\u00FCcher.example"},
	{"idna/nontransitional sharp s stays", "user@stra\u00DFe.de", "user@stra\u00DFe.de"},
	{"idna/right-to-left domain", "user@\u0645\u062B\u0627\u0644.\u0625\u062E\u062A\u0628\u0627\u0631", "user@\u0645\u062B\u0627\u0644.\u0625\u062E\u062A\u0628\u0627\u0631"},

	// UTF-8 local parts (RFC 6532).
	{"utf8/cyrillic", "Пользователь@example.com", "пользователь@example.com"},
	{"utf8/cjk local and domain", "用户@例子.广告", "用户@例子.广告"},
}

// refusedEmailCases are inputs NormalizeEmail refuses, with the message of its ValidationError.
var refusedEmailCases = []struct{ name, in, msg string }{
	{"empty", "", msgEmailRequired},
	{"white space only", " \t\n", msgEmailRequired},

	// Invisible and formatting characters are refused, never removed.
	{"zero-width space in local part", "ali\u200Bce@example.com", msgEmailInvisible},
	{"zero-width non-joiner", "ali\u200Cce@example.com", msgEmailInvisible},
	{"zero-width joiner", "ali\u200Dce@example.com", msgEmailInvisible},
	{"word joiner", "ali\u2060ce@example.com", msgEmailInvisible},
	{"BOM leading", "\uFEFFalice@example.com", msgEmailInvisible},
	{"BOM in domain", "alice@exam\uFEFFple.com", msgEmailInvisible},
	{"RTL override in domain", "alice@example.\u202Emoc", msgEmailInvisible},
	{"RTL override in local part", "\u202Eecila@example.com", msgEmailInvisible},
	{"LRM", "alice\u200E@example.com", msgEmailInvisible},
	{"RLM in domain", "alice@example\u200F.com", msgEmailInvisible},
	{"LRE", "\u202Aalice@example.com", msgEmailInvisible},
	{"first strong isolate", "alice@\u2068example.com", msgEmailInvisible},
	{"soft hyphen in local part", "al\u00ADice@example.com", msgEmailInvisible},
	{"soft hyphen in domain", "alice@exam\u00ADple.com", msgEmailInvisible},
	{"tag character", "alice\U000E0041@example.com", msgEmailInvisible},
	{"variation selector", "alice\uFE0F@example.com", msgEmailInvisible},
	{"combining grapheme joiner", "ali\u034Fce@example.com", msgEmailInvisible},
	{"Hangul filler", "alice\u3164@example.com", msgEmailInvisible},
	{"halfwidth Hangul filler", "alice\uFFA0@example.com", msgEmailInvisible},
	{"control character", "ali\x01ce@example.com", msgEmailInvisible},
	{"tab inside", "ali\tce@example.com", msgEmailInvisible},
	{"DEL", "alice\x7f@example.com", msgEmailInvisible},
	{"C1 control", "alice\u0085x@example.com", msgEmailInvisible},
	{"NUL", "alice\x00@example.com", msgEmailInvisible},

	{"invalid UTF-8", "ali\xffce@example.com", msgEmailInvalid},
	{"truncated UTF-8 sequence", "alic\xc3@example.com", msgEmailInvalid},

	// One plain address.
	{"no @", "alice", msgEmailInvalid},
	{"two @", "alice@bob@example.com", msgEmailInvalid},
	{"fullwidth @ in local part folds to a second @", "alice\uFF20bob@example.com", msgEmailInvalid},
	{"fullwidth @ instead of @", "alice\uFF20example.com", msgEmailInvalid},
	{"small @ in domain", "alice@bob\uFE6Bexample.com", msgEmailInvalid},
	{"empty local part", "@example.com", msgEmailInvalid},
	{"empty domain", "alice@", msgEmailInvalid},
	{"display name", "Alice <alice@example.com>", msgEmailInvalid},
	{"quoted local part", "\"a\"@example.com", msgEmailInvalid},
	{"space in local part", "a b@example.com", msgEmailInvalid},
	{"no-break space in local part", "a\u00A0b@example.com", msgEmailInvalid},
	{"ideographic space in local part", "a\u3000b@example.com", msgEmailInvalid},
	{"fullwidth quote folds to a quote", "\uFF02a\uFF02@example.com", msgEmailInvalid},
	{"leading dot in local part", ".alice@example.com", msgEmailInvalid},
	{"trailing dot in local part", "alice.@example.com", msgEmailInvalid},
	{"double dot in local part", "al..ice@example.com", msgEmailInvalid},
	{"double dot in UTF-8 local part", "jos\u00E9..x@example.com", msgEmailInvalid},
	{"private use", "alice\uE000@example.com", msgEmailInvalid},
	{"unassigned", "alice\u0378@example.com", msgEmailInvalid},

	// The domain.
	{"domain without dot", "alice@example", msgEmailInvalid},
	{"domain trailing dot", "alice@example.com.", msgEmailInvalid},
	{"domain leading dot", "alice@.example.com", msgEmailInvalid},
	{"domain empty label", "alice@example..com", msgEmailInvalid},
	{"domain literal", "alice@[192.0.2.1]", msgEmailInvalid},
	{"domain label starting with hyphen", "alice@-example.com", msgEmailInvalid},
	{"domain label ending with hyphen", "alice@example-.com", msgEmailInvalid},
	{"domain hyphens in positions 3 and 4", "alice@ab--cd.com", msgEmailInvalid},
	{"domain underscore", "alice@exa_mple.com", msgEmailInvalid},
	{"domain punctuation", "alice@exa!mple.com", msgEmailInvalid},
	{"domain disallowed code point U+2488", "alice@\u2488example.com", msgEmailInvalid},
	{"domain bad punycode", "alice@xn--abc.com", msgEmailInvalid},
	{"domain empty punycode", "alice@xn--.com", msgEmailInvalid},
	{"domain A-label of an ASCII label", "alice@xn--example-.com", msgEmailInvalid},
	{"domain bidi rule, Latin in a right-to-left label", "alice@\u0645\u062B\u0627\u0644a.com", msgEmailInvalid},
	{"domain bidi rule, Arabic in a left-to-right label", "alice@a\u0645.com", msgEmailInvalid},
	{"domain ZWJ without context", "alice@a\u200Db.com", msgEmailInvisible},

	// Lengths.
	{"255-byte result", strings.Repeat("a", 243) + "@example.com", msgEmailTooLong},
	{"255-byte result from a fullwidth input", strings.Repeat("\uFF41", 243) + "@example.com", msgEmailTooLong},
	{"255-byte result from a 174-byte input", strings.Repeat("\u023A", 81) + "@example.com", msgEmailTooLong},
	{"2000-byte input", strings.Repeat("a", 1988) + "@example.com", msgEmailTooLong},
	{"2000-byte invalid input", strings.Repeat("\u200B", 666) + "@x", msgEmailTooLong},
}

func TestNormalizeEmailCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range canonicalEmailCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeEmail(tc.in)
			if err != nil {
				t.Fatalf("NormalizeEmail(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeEmail(%q) mismatch (-want +got):\n-%q\n+%q", tc.in, tc.want, got)
			}
			if again, err := NormalizeEmail(got); err != nil || again != got {
				t.Errorf("NormalizeEmail(%q) not idempotent (-want +got):\n-%q\n+%q, %v", got, got, again, err)
			}
		})
	}
}

func TestNormalizeEmailRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range refusedEmailCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeEmail(tc.in)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want a *ValidationError", tc.in, got, err)
			}
			if got != "" {
				t.Errorf("NormalizeEmail(%q) returned %q with its error; want \"\"", tc.in, got)
			}
			if verr.Field != "email" || verr.Message != tc.msg {
				t.Errorf("NormalizeEmail(%q) error mismatch (-want +got):\n-email: %s\n+%s: %s", tc.in, tc.msg, verr.Field, verr.Message)
			}
		})
	}
}

// TestNormalizeEmailFixedInputs checks inputs whose length limits are spelled out in the rules: the
// cases above must really be as long as their names say.
func TestNormalizeEmailFixedInputs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int
	}{
		{strings.Repeat("a", 243) + "@example.com", 255},
		{strings.Repeat("a", 1988) + "@example.com", 2000},
		{strings.Repeat("\u200B", 666) + "@x", 2000},
		{strings.Repeat("\u023A", 81) + "@example.com", 174},
		{strings.Repeat("\u2C65", 81) + "@example.com", 255},
		{strings.Repeat("a", 235) + "@xn--bcher-kva.example", 257},
		{strings.Repeat("a", 235) + "@b\u00FCcher.example", 251},
	} {
		if len(c.in) != c.want {
			t.Errorf("len(%.20q...) mismatch (-want +got):\n-%d\n+%d", c.in, c.want, len(c.in))
		}
	}
}

func TestLegacyEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"ascii", "  Alice@Example.COM ", "alice@example.com"},
		{"A-label kept", "user@XN--BCHER-KVA.example", "user@xn--bcher-kva.example"},
		{"fullwidth kept", "ＡＬＩＣＥ@example.com", "ａｌｉｃｅ@example.com"},
		{"NFD kept", "JOSE\u0301@example.com", "jose\u0301@example.com"},
		{"no validation", "not an address", "not an address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LegacyEmail(tc.in); got != tc.want {
				t.Errorf("LegacyEmail(%q) mismatch (-want +got):\n-%q\n+%q", tc.in, tc.want, got)
			}
		})
	}
}

func TestNormalizePassword(t *testing.T) {
	t.Parallel()
	const nfc = "p\u00E4ssw\u00F6rd-\u00C5"
	for _, tc := range []struct{ name, in, want string }{
		{"NFC unchanged", nfc, nfc},
		{"NFD composed", "pa\u0308sswo\u0308rd-A\u030A", nfc},
		{"Angstrom sign", "p\u00E4ssw\u00F6rd-\u212B", nfc},
		{"ASCII unchanged", "correct horse battery staple!", "correct horse battery staple!"},
		{"compatibility characters kept", "\uFB01\u00B2\uFF21", "\uFB01\u00B2\uFF21"},
		{"invalid UTF-8 kept", "pass\xffword", "pass\xffword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizePassword(tc.in); got != tc.want {
				t.Errorf("NormalizePassword(%q) mismatch (-want +got):\n-%q\n+%q", tc.in, tc.want, got)
			}
		})
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, tc := range canonicalEmailCases {
		f.Add(tc.in)
	}
	for _, tc := range refusedEmailCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeEmail(in)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Field != "email" || got != "" {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want \"\" and a *ValidationError for email", in, got, err)
			}
			return
		}
		if again, err := NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("NormalizeEmail(%q) = %q, not idempotent (-want +got):\n-%q\n+%q, %v", in, got, got, again, err)
		}
		if i := strings.IndexFunc(got, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Cc) }); i >= 0 {
			t.Fatalf("NormalizeEmail(%q) = %q, has a Cf or Cc rune at byte %d", in, got, i)
		}
		if len(got) > maxEmailLength {
			t.Fatalf("NormalizeEmail(%q) = %q, %d bytes; want at most %d", in, got, len(got), maxEmailLength)
		}
		if n := strings.Count(got, "@"); n != 1 {
			t.Fatalf("NormalizeEmail(%q) = %q, %d '@'; want 1", in, got, n)
		}
	})
}
