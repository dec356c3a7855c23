package main

import (
	"fmt"
	"gqlauth/internal/testlog"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM in the middle of requests: every in-flight request completes, new connections are
// refused, and run returns cleanly.
func TestSIGTERMFinishesInFlightRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	t.Setenv("ADDR", addr)
	t.Setenv("DATA_DIR", dir)
	t.Setenv("DATABASE_URL", dir+"/test.db")
	t.Setenv("PASSWORD_HASH_CONCURRENCY", "1") // logins queue behind one argon2id run at a time
	t.Setenv("LOGIN_RATE_LIMIT", "off")
	t.Setenv("LOGIN_IP_RATE_LIMIT", "off")
	t.Setenv("SHUTDOWN_TIMEOUT", "30s")

	var logs testlog.Buffer
	done := make(chan error, 1)
	go func() { done <- run(&logs) }()
	base := "http://" + addr
	waitUntil(t, func() bool { res, err := http.Get(base + "/healthz"); return err == nil && res.Body.Close() == nil })

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
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
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
