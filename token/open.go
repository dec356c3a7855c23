package token

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"
)

// Source says where the server's signing keys come from. The first one set is used: Secret (HS256),
// then KeysDir (a rotating Ed25519 key set, see LoadKeyDir), then KeyFile (one Ed25519 key).
type Source struct {
	// Secret is an HS256 shared secret, at least MinSecretLength bytes.
	Secret []byte
	// KeysDir is a directory of rotating Ed25519 key files shared by every replica.
	KeysDir string
	// KeyFile is the PKCS#8 PEM file of one Ed25519 key; it is generated (mode 0600) when missing, so
	// a restart keeps the tokens it signed valid.
	KeyFile string
	// Production forbids generating a first key in a missing or empty KeysDir: every replica would
	// then sign with a key of its own, and tokens from one would fail on the others.
	Production bool
}

// OpenIssuer returns the issuer for src: HS256 over Secret, EdDSA over the keys in KeysDir, or EdDSA
// over the key in KeyFile (generated when missing). In development a missing or empty KeysDir gets a
// first key, active at once; in production that is an error naming "authctl keys rotate". Errors name
// the key source at fault (JWT_KEYS_DIR, or the key file's path). log records generated keys and the
// loaded key set; nil means slog.Default().
func OpenIssuer(src Source, opts Options, log *slog.Logger) (*Issuer, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(src.Secret) > 0 {
		return NewHS256Issuer(src.Secret, opts)
	}
	if src.KeysDir != "" {
		return openKeyDirIssuer(src, opts, log)
	}
	key, created, err := LoadOrCreateEd25519Key(src.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", src.KeyFile, err)
	}
	if created {
		log.Info("generated a new Ed25519 signing key", "path", src.KeyFile)
	}
	return NewEdDSAIssuer(key, opts)
}

// openKeyDirIssuer builds the issuer over the rotating keys in src.KeysDir.
func openKeyDirIssuer(src Source, opts Options, log *slog.Logger) (*Issuer, error) {
	dir := src.KeysDir
	keys, err := LoadKeyDir(dir)
	noKeys := errors.Is(err, ErrNoKeys) || errors.Is(err, fs.ErrNotExist)
	if noKeys && !src.Production {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		path, kid, gerr := GenerateKeyFile(dir, now())
		if gerr != nil {
			return nil, fmt.Errorf("JWT_KEYS_DIR: %w", gerr)
		}
		log.Info("generated a first Ed25519 signing key in JWT_KEYS_DIR", "path", path, "kid", kid)
		keys, err = LoadKeyDir(dir)
	} else if noKeys {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w; create the first key with: authctl keys rotate", err)
	}
	if err != nil {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w", err)
	}
	iss, err := NewEdDSAKeySetIssuer(keys, opts)
	if err != nil {
		return nil, fmt.Errorf("JWT_KEYS_DIR: %w", err)
	}
	log.Info("signing keys loaded", "dir", dir, "kids", keyIDs(keys), "signer", iss.KeyID())
	return iss, nil
}

// WatchKeyDir re-reads dir (ReloadKeyDir) every interval until ctx ends, then returns. A key added by
// "authctl keys rotate" (or delivered by a secret store) is thereby published in the JWKS and, from
// its activation time, signs, with no restart; a deleted key file stops verifying. A directory that
// fails to load leaves the current keys in place and is logged at warn; a change is logged at info.
// It blocks: the caller decides which goroutine it runs on and when it stops.
func (i *Issuer) WatchKeyDir(ctx context.Context, dir string, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		keys, changed, err := i.ReloadKeyDir(dir)
		switch {
		case err != nil:
			log.Warn("signing keys not reloaded; keeping the current keys", "dir", dir, "err", err)
		case changed:
			log.Info("signing keys reloaded", "dir", dir, "kids", keyIDs(keys), "signer", i.KeyID())
		}
	}
}

func keyIDs(keys []Key) []string {
	ids := make([]string, len(keys))
	for n, k := range keys {
		ids[n] = k.Kid
	}
	return ids
}
