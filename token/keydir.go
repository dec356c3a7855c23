package token

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// A key directory (JWT_KEYS_DIR) holds a rotating key set as files shared by every replica, so keys
// never live in the database (a dump never contains one) and secret stores can deliver them as files.
// Each key is a PKCS#8 PEM Ed25519 private key named
//
//	<activation time, UTC, 20060102T150405Z>-<first 8 characters of the kid>.pem
//
// for example 20300102T030405Z-kPrK_qmx.pem. Other names (dot files, temporary files, READMEs, the
// ..data links of a Kubernetes Secret volume) are ignored; symbolic links are followed.

// KeyFileTimeLayout is the time layout of the activation time in a key file name (always UTC).
const KeyFileTimeLayout = "20060102T150405Z"

const keyFileKidLen = 8

var keyFileName = regexp.MustCompile(`^([0-9]{8}T[0-9]{6}Z)-([A-Za-z0-9_-]{8})\.pem$`)

// ErrNoKeys is returned (wrapped) by LoadKeyDir for a directory with no key files.
var ErrNoKeys = errors.New("token: no signing keys")

// KeyFileName returns the file name of a key with kid activating at activateAt (which must be a whole
// second; it is formatted in UTC).
func KeyFileName(activateAt time.Time, kid string) string {
	return activateAt.UTC().Format(KeyFileTimeLayout) + "-" + kid[:min(keyFileKidLen, len(kid))] + ".pem"
}

type keyFile struct {
	path string
	key  Key
}

// LoadKeyDir reads every key file in dir and returns the keys sorted by activation time (then kid,
// the order every issuer uses). Any key file that cannot be read or parsed, whose name does not match
// its key's kid, or that repeats another file's key is an error naming the file; so is a directory
// with no key files (wrapping ErrNoKeys) and a missing one (wrapping fs.ErrNotExist).
func LoadKeyDir(dir string) ([]Key, error) {
	files, err := scanKeyDir(dir)
	if err != nil {
		return nil, err
	}
	keys := make([]Key, len(files))
	for n, f := range files {
		keys[n] = f.key
	}
	return keys, nil
}

func scanKeyDir(dir string) ([]keyFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("token: key directory: %w", err)
	}
	var (
		files []keyFile
		errs  []error
		byKid = map[string]string{}
	)
	for _, e := range entries {
		m := keyFileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		path := filepath.Join(dir, e.Name())
		at, err := time.Parse(KeyFileTimeLayout, m[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("token: key file %s: bad activation time %q", path, m[1]))
			continue
		}
		priv, err := LoadEd25519Key(path) // follows symbolic links; names the file in its errors
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, pub, err := checkEd25519Key(priv)
		if err != nil {
			errs = append(errs, fmt.Errorf("token: key file %s: %w", path, err))
			continue
		}
		kid := ed25519Thumbprint(pub)
		if kid[:keyFileKidLen] != m[2] {
			// A mismatched name would make operators (and authctl) reason about the wrong key.
			errs = append(errs, fmt.Errorf("token: key file %s holds key %s; its name should be %s", path, kid, KeyFileName(at, kid)))
			continue
		}
		if other, dup := byKid[kid]; dup {
			errs = append(errs, fmt.Errorf("token: key files %s and %s hold the same key", other, path))
			continue
		}
		byKid[kid] = path
		files = append(files, keyFile{path: path, key: Key{Kid: kid, ActivateAt: at, Private: priv}})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s (key files are named <activation time, 20060102T150405Z>-<kid prefix>.pem)", ErrNoKeys, dir)
	}
	slices.SortFunc(files, func(a, b keyFile) int {
		return cmp.Or(a.key.ActivateAt.Compare(b.key.ActivateAt), cmp.Compare(a.key.Kid, b.key.Kid))
	})
	return files, nil
}

// GenerateKeyFile generates an Ed25519 key that becomes the signer at activateAt and stores it in dir
// (created with mode 0700 if missing) as a 0600 file named by KeyFileName. activateAt is rounded up to
// a whole second, so the key never activates earlier than asked. The file appears atomically: a
// replica re-reading the directory sees either nothing or the whole key.
func GenerateKeyFile(dir string, activateAt time.Time) (path, kid string, err error) {
	at := activateAt.UTC()
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	priv, data, err := newEd25519PEM()
	if err != nil {
		return "", "", err
	}
	kid = ed25519Thumbprint(priv.Public().(ed25519.PublicKey))
	path = filepath.Join(dir, KeyFileName(at, kid))
	if err := createFileExclusive(path, data); err != nil {
		return "", "", err
	}
	return path, kid, nil
}

// PruneKeyDir deletes the files of the keys in dir that are retired at now for tokens that live ttl
// with leeway (the issuer's Options.TTL and Options.Leeway): keys whose successor has been active for
// longer than ttl+leeway, which no issuer accepts any more. The current signer and pending keys are
// never retired, so never deleted. If any key file in dir is invalid nothing is deleted. removed lists
// the deleted paths.
func PruneKeyDir(dir string, now time.Time, ttl, leeway time.Duration) (removed []string, err error) {
	files, err := scanKeyDir(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for n := 0; n+1 < len(files); n++ {
		if !retiredSince(files[n+1].key.ActivateAt, now, ttl+leeway) {
			// Successors activate no earlier, so no later key is retired either.
			break
		}
		if err := os.Remove(files[n].path); err != nil {
			errs = append(errs, fmt.Errorf("token: %w", err))
			continue
		}
		removed = append(removed, files[n].path)
	}
	return removed, errors.Join(errs...)
}

// ReloadKeyDir re-reads dir with LoadKeyDir and, when its keys (kid and activation time) differ from
// the issuer's, installs them with SetKeys. It returns the loaded keys and whether the set changed. On
// error the current set is kept.
func (i *Issuer) ReloadKeyDir(dir string) (keys []Key, changed bool, err error) {
	keys, err = LoadKeyDir(dir)
	if err != nil {
		return nil, false, err
	}
	if i.keys.Load().sameAs(keys) {
		return keys, false, nil
	}
	if err := i.SetKeys(keys); err != nil {
		return nil, false, err
	}
	return keys, true, nil
}
