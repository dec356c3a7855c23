package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"gqlauth/config"
	"gqlauth/token"
)

// rotateKeys implements "authctl keys rotate": it adds a new signing key to JWT_KEYS_DIR that becomes
// the signer after 2 × KEY_RELOAD_INTERVAL, and deletes the files of retired keys.
//
// The delay lets every server re-read the directory (they do so every KEY_RELOAD_INTERVAL) and
// publish the new key in its JWKS before any server signs with it; no server needs a restart, because
// each one switches to the new key by itself at its activation time. Tokens signed with the old key
// stay valid until they expire; the old key's file is deleted by a later rotation, once its successor
// has been active for longer than ACCESS_TOKEN_TTL plus JWT_LEEWAY (which must match the servers').
func rotateKeys(cfg *config.Config, stdout io.Writer) error {
	dir := cfg.JWTKeysDir
	if dir == "" {
		return errors.New("keys rotate: JWT_KEYS_DIR is not set; rotation works on the key directory the servers share " +
			"(set JWT_KEYS_DIR to it, as for the servers)")
	}
	now := time.Now()
	// Before it signs, every replica must have re-read the directory (one reload interval, twice for
	// margin) and every verifier must have had time to refetch the JWKS that lists it.
	delay := 2*cfg.KeyReloadInterval + token.JWKSMaxAge
	keys, err := token.LoadKeyDir(dir)
	switch {
	case errors.Is(err, token.ErrNoKeys) || errors.Is(err, fs.ErrNotExist):
		// Nothing signs yet, so there is nothing to hand over from: the first key is active at once.
		delay, keys = 0, nil
	case err != nil:
		// Adding a key to a directory the servers cannot load would not take effect anywhere.
		return fmt.Errorf("keys rotate: %w", err)
	}
	for _, k := range keys {
		if k.ActivateAt.After(now) {
			fmt.Fprintf(stdout, "note: key %s is already pending (activates %s); the new key will supersede it\n",
				k.Kid, k.ActivateAt.Format(time.RFC3339))
		}
	}

	path, kid, err := token.GenerateKeyFile(dir, now.Add(delay))
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	// GenerateKeyFile rounds the activation time up to a whole second, as the file name shows it.
	activateAt := now.Add(delay).UTC()
	if t := activateAt.Truncate(time.Second); !t.Equal(activateAt) {
		activateAt = t.Add(time.Second)
	}
	fmt.Fprintf(stdout, "new signing key %s\n  file:      %s\n", kid, path)
	if delay == 0 {
		fmt.Fprintf(stdout, "  activates: %s (now: it is the first key)\n", activateAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "  activates: %s (in %s: servers re-read %s every %s and publish it in the JWKS first)\n",
			activateAt.UTC().Format(time.RFC3339), activateAt.Sub(now).Round(time.Second), dir, cfg.KeyReloadInterval)
	}

	removed, err := token.PruneKeyDir(dir, now, cfg.AccessTokenTTL, cfg.JWTLeeway)
	for _, p := range removed {
		fmt.Fprintf(stdout, "removed retired key file %s\n", filepath.Base(p))
	}
	if err != nil {
		return fmt.Errorf("keys rotate: the new key is in place, but removing retired keys failed: %w", err)
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "no retired key files to remove")
	}
	return nil
}
