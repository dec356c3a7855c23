package app

import (
	"context"
	"path/filepath"
	"testing"

	"gqlauth/config"
)

func TestServerHasTimeouts(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"DATA_DIR": dir, "DATABASE_URL": filepath.Join(dir, "t.db"), "DB_MAX_OPEN_CONNS": "3"}
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pool, err := a.Store.SQL()
	if err != nil || pool.Stats().MaxOpenConnections != 3 {
		t.Fatalf("DB_MAX_OPEN_CONNS not applied: %v %+v", err, pool.Stats())
	}
	s := a.Server(":0")
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("server without timeouts: %+v", s)
	}
}
