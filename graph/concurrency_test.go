package graph_test

import (
	"fmt"
	"sync"
	"testing"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// 64 clients writing at once (register, a refresh chain, logout) on each engine: no "database is
// locked" or any other internal error reaches a client, and every chain stays valid.
func TestConcurrentWritersGetNoInternalErrors(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := apptest.New(t, dsn, apptest.Options{Vars: map[string]string{"REGISTER_RATE_LIMIT": "off"}})
		const clients = 64
		var wg sync.WaitGroup
		failures := make(chan string, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.Post(`mutation($i: RegisterInput!) { register(input: $i) { refreshToken } }`,
					map[string]any{"i": map[string]any{"email": fmt.Sprintf("w%d@example.com", i), "password": pw}})
				if len(r.Errors) > 0 {
					failures <- r.Raw
					return
				}
				var p apptest.Pair
				r.Decode(t, "register", &p)
				rt := p.RefreshToken
				for range 3 {
					r = e.Refresh(rt)
					if len(r.Errors) > 0 {
						failures <- r.Raw
						return
					}
					var next apptest.Pair
					r.Decode(t, "refreshToken", &next)
					rt = next.RefreshToken
				}
				if r = e.Post(logoutQ, map[string]any{"t": rt}); len(r.Errors) > 0 {
					failures <- r.Raw
				}
			}()
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Errorf("a client saw an error: %s", f)
		}
	})
}
