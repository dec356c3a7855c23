package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"gqlauth/internal/testlog"
)

// runMainEnv makes the test binary run main instead of the tests: TestSignals starts it as a child
// process and signals the child, never itself.
const runMainEnv = "GQLAUTH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// main's signal wiring, in a child process running the real main: SIGTERM starts the shutdown
// (readiness fails at once, the API answers through SHUTDOWN_DRAIN_DELAY) and the process exits 0;
// SIGINT (Ctrl-C) does the same; a second signal during the shutdown kills the process.
func TestSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		sig        syscall.Signal
		drainDelay string
		second     bool // send the signal again during the drain delay
	}{
		{"SIGTERM", syscall.SIGTERM, "1s", false},
		{"SIGINT", syscall.SIGINT, "0s", false},
		{"second SIGTERM kills", syscall.SIGTERM, "1m", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, dir := freeAddr(t), t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			// The parent's environment (PATH, TEST_*) plus the server's; the last value of a key wins.
			cmd.Env = append(os.Environ(), runMainEnv+"=1", "ADDR="+addr, "DATA_DIR="+dir, "DATABASE_URL="+dir+"/test.db",
				"REDIS_URL=", "APP_ENV=development", "SHUTDOWN_DRAIN_DELAY="+tc.drainDelay, "SHUTDOWN_TIMEOUT=15s")
			logs := &testlog.Buffer{}
			cmd.Stderr = logs
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var waitErr error // cmd.Wait's result, set before exited is closed
			go func() { waitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				select {
				case <-exited:
				default:
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			base := "http://" + addr
			waitUntil(t, func() bool {
				res, err := http.Get(base + "/healthz")
				return err == nil && res.Body.Close() == nil
			})
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if tc.drainDelay != "0s" {
				waitUntil(t, func() bool {
					res, err := http.Get(base + "/readyz")
					return err == nil && res.Body.Close() == nil && res.StatusCode == http.StatusServiceUnavailable
				})
				res, err := http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
				if err != nil {
					t.Fatalf("the API stopped answering during the drain delay: %v", err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"__typename":"Query"`) {
					t.Fatalf("during the drain delay: %d %s", res.StatusCode, body)
				}
			}
			if tc.second {
				if err := cmd.Process.Signal(tc.sig); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("the server did not exit after %s; log:\n%s", tc.name, logs.String())
			}
			err := waitErr
			if tc.second {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != tc.sig {
					t.Fatalf("after a second %s: %v, want the process killed by it; log:\n%s", tc.sig, err, logs.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("exit: %v; log:\n%s", err, logs.String())
			}
			out := logs.String()
			if !strings.Contains(out, "shutting down") || !strings.Contains(out, "msg=stopped") {
				t.Fatalf("no clean stop in the log:\n%s", out)
			}
			if stdout.Len() != 0 {
				t.Fatalf("the server wrote to stdout: %q", stdout.String())
			}
		})
	}
}
