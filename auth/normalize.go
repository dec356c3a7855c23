package auth

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// maxEmailInput bounds the input (after trimming surrounding white space) that NormalizeEmail maps
// at all. No input longer than this can normalise to maxEmailLength bytes: the mappings below
// shrink a rune at most from 4 bytes to 1, and the runes that map to nothing are refused first.
const maxEmailInput = 1024

// The messages of the *ValidationError values NormalizeEmail returns.
var (
	msgEmailRequired  = "is required"
	msgEmailTooLong   = fmt.Sprintf("must be at most %d characters", maxEmailLength)
	msgEmailInvalid   = "is not a valid e-mail address"
	msgEmailInvisible = "contains invisible or formatting characters"
)

// emailDomainProfile maps and validates the domain of an address as UTS #46 processing for lookup
// does (section 4 of UTS #46, RFC 5891 section 5): case, width and compatibility mapping, NFC,
// IDNA2008 code point and hyphen rules, the ContextJ rules, STD3 ASCII rules (letters, digits and
// '-' only, so '_' is refused) and the RFC 5893 Bidi Rule. It is non-transitional, as IDNA2008
// and current browsers are: "ß" stays "ß" instead of becoming "ss", because "straße.de" and
// "strasse.de" are different registrations. DNS lengths are not verified, so an ASCII domain
// accepted before this profile existed is not refused for a label over 63 octets.
var emailDomainProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.StrictDomainName(true),
	idna.Transitional(false),
)

// NormalizeEmail returns the canonical stored form of an e-mail address, or a *ValidationError for
// field "email". Two addresses that a user cannot tell apart must map to the same form, or they
// would register as distinct accounts; addresses that hide characters are refused instead.
//
// The rules, in order:
//   - Surrounding white space is trimmed; an empty address is refused ("is required"), and so is
//     one over 1024 bytes, before any mapping, so the work is bounded ("must be at most 254
//     characters").
//   - Invalid UTF-8 is refused. So is any rune of category Cf (zero-width space and joiners, word
//     joiner, BOM, soft hyphen, bidi marks, embeddings, overrides and isolates, ...) or Cc
//     (control characters), and any other default-ignorable code point (variation selectors, the
//     combining grapheme joiner, Hangul fillers): fonts draw these as nothing, so they are refused
//     rather than silently removed, wherever they occur ("contains invisible or formatting
//     characters").
//   - The address is split at its last '@'. The local part is width-folded (fullwidth and halfwidth
//     forms to their normal width), lower-cased and put in Unicode NFC; it must be a non-empty
//     dot-atom (RFC 5322 section 3.2.3, with UTF-8 as RFC 6532 allows) without white space, '@',
//     any of ()<>[]:;\,", a leading, trailing or doubled '.', or a rune that is unassigned or for
//     private use (its future mappings are unknown).
//   - The domain is mapped by UTS #46 lookup processing (see emailDomainProfile), which must
//     succeed, and stored in its Unicode form (the ToUnicode of that ASCII form), lower-cased and
//     NFC: "BÜCHER.example", "bücher.example" in NFC or NFD and "xn--bcher-kva.example" all
//     become "bücher.example", and a fullwidth "ｅｘａｍｐｌｅ．ｃｏｍ" becomes "example.com".
//     It must contain a '.' and have no empty label.
//   - The result must hold exactly one '@', be at most 254 bytes ("must be at most 254
//     characters") and, when it is ASCII, parse with net/mail as one plain address equal to
//     itself. It is a fixed point: NormalizeEmail of the result is the result; an input whose
//     mapping would not reach one in a single step is refused.
//
// For plain ASCII addresses this is the old rule (trim, lower-case, one plain address), except
// that the domain must now also obey the DNS host name rules (no '_' or other punctuation, no
// label starting or ending with '-').
func NormalizeEmail(email string) (string, error) {
	bad := func(msg string) (string, error) { return "", &ValidationError{Field: "email", Message: msg} }
	e := strings.TrimSpace(email)
	if e == "" {
		return bad(msgEmailRequired)
	}
	if len(e) > maxEmailInput {
		return bad(msgEmailTooLong)
	}
	if !utf8.ValidString(e) {
		return bad(msgEmailInvalid)
	}
	if strings.IndexFunc(e, isInvisible) >= 0 {
		return bad(msgEmailInvisible)
	}
	at := strings.LastIndexByte(e, '@')
	if at < 0 {
		return bad(msgEmailInvalid)
	}
	local, ok := canonicalLocalPart(e[:at])
	if !ok {
		return bad(msgEmailInvalid)
	}
	domain, ok := canonicalDomain(e[at+1:])
	if !ok {
		return bad(msgEmailInvalid)
	}
	result := local + "@" + domain
	if len(result) > maxEmailLength {
		return bad(msgEmailTooLong)
	}
	if !isPlainAddress(result) {
		return bad(msgEmailInvalid)
	}
	return result, nil
}

// LegacyEmail returns email as NormalizeEmail stored it before addresses were canonicalised:
// strings.ToLower(strings.TrimSpace(email)), without any validation. Accounts registered before
// then are stored under that form, which can differ from NormalizeEmail's (an "xn--" domain is
// now stored in its Unicode form, a fullwidth or NFD address was stored as typed), so the login
// path looks an account up under this form when the canonical one finds none. Use it for lookups
// only, never to store a new address.
func LegacyEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// NormalizePassword returns pw in Unicode Normalization Form C, the form to hash and to verify.
// Canonically equivalent strings look the same and are typed differently by different keyboards and
// input methods ("å" as one code point or as "a" and a combining ring), so without this a password
// set on one device can fail on another. NFC is what the RFC 8265 OpaqueString profile applies to
// passwords (section 4.2.2). NIST SP 800-63B section 5.1.1.2 recommends normalising Unicode secrets
// too, suggesting NFKC or NFKD; NFC is used because it only unifies strings that are the same text,
// whereas the compatibility forms would also merge characters a user may have chosen on purpose
// ("²" and "2", "ﬁ" and "fi"), and because it matches RFC 8265. Bytes that are not valid UTF-8
// are left as they are.
//
// Hashes made before this function existed were computed over the raw bytes of the password, so
// a caller verifying a password against a stored hash must fall back to the raw form when it
// differs from the normalised one.
func NormalizePassword(pw string) string {
	return norm.NFC.String(pw)
}

// isInvisible reports whether r is refused anywhere in an address: a format character (Cf), a
// control character (Cc), or another default-ignorable code point (UAX #44: variation selectors
// and Other_Default_Ignorable_Code_Point, which includes U+034F and the Hangul fillers). Such runes
// render as nothing, so an address containing one looks like another address without it.
func isInvisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Cc, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// mapLocalPart applies the local-part mappings: width folding, lower-casing, NFC.
func mapLocalPart(s string) string {
	return norm.NFC.String(strings.ToLower(width.Fold.String(s)))
}

// canonicalLocalPart maps the local part s and reports whether the result is valid and a fixed
// point of the mapping (so that NormalizeEmail is idempotent).
func canonicalLocalPart(s string) (string, bool) {
	l := mapLocalPart(s)
	if !validLocalPart(l) || mapLocalPart(l) != l {
		return "", false
	}
	return l, true
}

// validLocalPart reports whether l is a dot-atom local part (RFC 5322 section 3.2.3, extended to
// UTF-8 by RFC 6532) made of assigned, visible runes.
func validLocalPart(l string) bool {
	if l == "" || l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return false
	}
	for _, r := range l {
		switch {
		case r < utf8.RuneSelf:
			// The RFC 5322 specials other than '.', and space; controls were refused up front.
			if strings.ContainsRune(" \t\r\n\"(),:;<>[]\\@", r) || !unicode.IsPrint(r) {
				return false
			}
		case unicode.IsSpace(r) || isInvisible(r) || !unicode.IsGraphic(r):
			// !IsGraphic: unassigned, private use or a line or paragraph separator.
			return false
		}
	}
	return true
}

// canonicalDomain maps the domain s to its canonical Unicode form and reports whether it is valid.
func canonicalDomain(s string) (string, bool) {
	a, err := emailDomainProfile.ToASCII(s)
	if err != nil {
		return "", false
	}
	u, err := emailDomainProfile.ToUnicode(a)
	if err != nil {
		return "", false
	}
	d := norm.NFC.String(strings.ToLower(u))
	if !strings.Contains(d, ".") || d[0] == '.' || d[len(d)-1] == '.' || strings.Contains(d, "..") ||
		strings.IndexFunc(d, func(r rune) bool { return r == '@' || unicode.IsSpace(r) || isInvisible(r) }) >= 0 {
		return "", false
	}
	// The stored form must map to the same ASCII form again, or normalising it would change it.
	if a2, err := emailDomainProfile.ToASCII(d); err != nil || a2 != a {
		return "", false
	}
	return d, true
}

// isPlainAddress is the final check of an assembled address: exactly one '@' and, for an ASCII
// address, one plain address by net/mail. net/mail is not asked about non-ASCII addresses, whose
// shape canonicalLocalPart and canonicalDomain have already checked, so that its treatment of UTF-8
// does not decide which internationalised addresses are valid.
func isPlainAddress(s string) bool {
	if strings.Count(s, "@") != 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Name == "" && addr.Address == s
}
