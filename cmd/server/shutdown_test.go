package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"gqlauth/internal/testlog"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// SIGTERM in the middle of requests: every in-flight request completes, new connections are
// refused, and run returns cleanly.
func TestSIGTERMFinishesInFlightRequests(t *testing.T) {
	addr, logs, done := startServer(t)
	base := "http://" + addr

	post := func(q string) (string, error) {
		res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(q))
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return fmt.Sprintf("%d %s", res.StatusCode, b), nil
	}
	if out, err := post(`{"query":"mutation { register(input: {email: \"a@example.com\", password: \"correct horse\"}) { accessToken } }"}`); err != nil || !strings.HasPrefix(out, "200") {
		t.Fatalf("register: %v %s", err, out)
	}

	// Six logins at once: with one hashing slot they finish one after another.
	const n = 6
	results := make(chan string, n)
	for range n {
		go func() {
			out, err := post(`{"query":"mutation { login(input: {email: \"a@example.com\", password: \"correct horse\"}) { accessToken } }"}`)
			if err != nil {
				out = "error: " + err.Error()
			}
			results <- out
		}()
	}
	first := <-results // by now all six were accepted; five are still queued or hashing
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "shutting down") })
	// New connections are refused once shutdown has begun.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}
	got := []string{first}
	for range n - 1 {
		got = append(got, <-results)
	}
	for _, out := range got {
		if !strings.HasPrefix(out, "200") || !strings.Contains(out, "accessToken") {
			t.Errorf("in-flight request dropped: %s", out)
		}
	}
	waitStopped(t, done)
	if !strings.Contains(logs.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
}

// startServer runs the server (run, as main does) on a free port with an SQLite file, one hashing
// slot (logins queue behind one argon2id run at a time), no rate limits and SHUTDOWN_TIMEOUT=30s,
// and waits until it answers. It returns the address, the log and run's result.
func startServer(t *testing.T) (string, *testlog.Buffer, chan error) {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	t.Setenv("ADDR", addr)
	t.Setenv("DATA_DIR", dir)
	t.Setenv("DATABASE_URL", dir+"/test.db")
	t.Setenv("PASSWORD_HASH_CONCURRENCY", "1")
	t.Setenv("LOGIN_RATE_LIMIT", "off")
	t.Setenv("LOGIN_IP_RATE_LIMIT", "off")
	t.Setenv("SHUTDOWN_TIMEOUT", "30s")
	logs := &testlog.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(logs) }()
	waitUntil(t, func() bool {
		res, err := http.Get("http://" + addr + "/healthz")
		return err == nil && res.Body.Close() == nil
	})
	return addr, logs, done
}

// waitStopped waits for run to return after SIGTERM, and fails the test unless it returned cleanly.
func waitStopped(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SIGTERM under load: 32 clients loop requests (GET me on keep-alive connections, which the client
// may retry because GET is idempotent, and POST login on fresh connections) when the signal comes.
// Every request the server read gets its full answer (the server's access log and the clients' count
// of answers agree); afterwards new connections are refused. The figures go to the test log (-v).
func TestSIGTERMUnderLoad(t *testing.T) {
	addr, logs, done := startServer(t)
	base := "http://" + addr
	res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"mutation { register(input: {email: \"a@example.com\", password: \"correct horse\"}) { accessToken } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Data struct{ Register struct{ AccessToken string } }
	}
	_ = json.NewDecoder(res.Body).Decode(&reg)
	res.Body.Close()
	access := reg.Data.Register.AccessToken
	if access == "" {
		t.Fatal("register failed")
	}

	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	me := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/graphql?query=%7B+me+%7B+id+%7D+%7D", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		return keepAlive.Do(req)
	}
	login := func() (*http.Response, error) {
		return fresh.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"mutation { login(input: {email: \"a@example.com\", password: \"correct horse\"}) { accessToken } }"}`))
	}

	var (
		signalled                                       atomic.Int64 // unix nanoseconds of the signal, 0 before
		ok, okAfter, inFlight, refused, lost, unreached atomic.Int64
		problems                                        = make(chan string, 64)
		wg                                              sync.WaitGroup
	)
	for i := range 32 {
		send := me
		if i%4 == 0 {
			send = login
		}
		wg.Go(func() {
			for {
				started := time.Now().UnixNano()
				res, err := send()
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) && signalled.Load() != 0 {
						refused.Add(1)
						return // the server is gone for this client
					}
					// Another transport error: either the server read the request and the answer
					// was lost (the count below catches that), or the connection was reset before
					// the server accepted it, in the instant between draining the accept queue and
					// closing the socket, and the request never reached it.
					unreached.Add(1)
					t.Logf("transport error: %v", err)
					return
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"data"`) || strings.Contains(string(body), `"errors"`) {
					lost.Add(1)
					select {
					case problems <- fmt.Sprintf("bad answer: %d %v %s", res.StatusCode, err, body):
					default:
					}
					continue
				}
				ok.Add(1)
				if s := signalled.Load(); s != 0 {
					okAfter.Add(1)
					if started < s {
						inFlight.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	signalled.Store(time.Now().UnixNano())
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitStopped(t, done)
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	if inFlight.Load() == 0 {
		t.Error("no request was in flight at the signal; the test proves nothing")
	}
	// Every request the server handled was answered: its access log has one line per request
	// handled (the register above included), and the clients counted every answer they got.
	handled := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "http request") && strings.Contains(line, "/graphql") {
			handled++
		}
	}
	if answered := ok.Load() + lost.Load() + 1; int64(handled) != answered {
		t.Errorf("the server handled %d GraphQL requests but clients got %d answers: %d dropped", handled, answered, int64(handled)-answered)
	}
	t.Logf("SIGTERM under load (32 clients): %d answered in all, %d of them after the signal (%d in flight at it); "+
		"the server handled %d, so 0 dropped; afterwards %d clients were refused a new connection and %d reset before the server accepted them",
		ok.Load(), okAfter.Load(), inFlight.Load(), handled-1, refused.Load(), unreached.Load())
}
