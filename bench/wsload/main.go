// Command wsload measures gqlauth's graphql-ws subscriptions at scale (issue 15). It is a benchmark
// tool, not a test: it drives running servers over loopback and prints its figures on stdout.
//
//	wsload -mode idle -url http://127.0.0.1:18091/graphql -pid <server pid> -n 10000
//
// opens n authenticated sockets (spread over a few fresh accounts), each subscribed to sessionEvents,
// at a bounded rate, then reports the server's RSS per socket (/proc/<pid>/status VmRSS before and
// after) and its CPU at idle over -idle (/proc/<pid>/stat utime+stime), and checks that every socket
// is still open and still receives events.
//
//	wsload -mode logoutall -url http://127.0.0.1:18091/graphql,http://127.0.0.1:18092/graphql
//
// runs -rounds rounds: a fresh account with -sessions sessions and -sockets sockets (split round-robin
// over the URLs and the sessions), waits until every subscription is live, sends logoutAll to the
// first URL and times each socket's close (4403 SESSION_REVOKED expected); it reports p50/p99 of the
// per-round "logoutAll to last close" latency and of the single closes.
//
// Loopback only; every wait is bounded. scripts/ws-bench.sh starts the servers and runs both modes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsload: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	mode     string
	urls     []string
	password string
	sources  int
	rate     int
	parallel int
	timeout  time.Duration

	// idle
	n      int
	users  int
	pid    int
	settle time.Duration
	gcWait time.Duration
	idle   time.Duration

	// logoutall
	rounds   int
	sockets  int
	sessions int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var urls string
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "idle", "idle or logoutall")
	fs.StringVar(&urls, "url", "http://127.0.0.1:8080/graphql", "GraphQL endpoint(s), comma-separated (logoutall splits sockets over them and sends logoutAll to the first)")
	fs.StringVar(&o.password, "password", "wsload-password-1", "password of the accounts the tool registers")
	fs.IntVar(&o.sources, "sources", 1, "open sockets from this many source addresses 127.0.0.1 … 127.0.0.N (more ephemeral ports)")
	fs.IntVar(&o.rate, "rate", 500, "sockets opened per second at most")
	fs.IntVar(&o.parallel, "parallel", 64, "socket handshakes in flight at most")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on every wait (handshake, events, closes)")
	fs.IntVar(&o.n, "n", 10000, "idle: sockets to open")
	fs.IntVar(&o.users, "users", 5, "idle: accounts the sockets are spread over (one session each)")
	fs.IntVar(&o.pid, "pid", 0, "idle: the server's process id, for VmRSS and CPU (0: not measured)")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "idle: wait after the last socket before reading RSS")
	fs.DurationVar(&o.gcWait, "gc-wait", 150*time.Second, "idle: before each memory sample, wait at most this long for the server's next GC (0: do not wait)")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "idle: the window over which the server's CPU is measured")
	fs.IntVar(&o.rounds, "rounds", 20, "logoutall: rounds")
	fs.IntVar(&o.sockets, "sockets", 100, "logoutall: sockets of the account per round")
	fs.IntVar(&o.sessions, "sessions", 10, "logoutall: sessions (logins) the sockets are spread over")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, u := range strings.Split(urls, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return o, fmt.Errorf("-url %q: want http(s)://host:port/graphql", u)
		}
		o.urls = append(o.urls, pu.String())
	}
	switch {
	case o.mode != "idle" && o.mode != "logoutall":
		return o, fmt.Errorf("-mode %q: want idle or logoutall", o.mode)
	case o.sources < 1 || o.sources > 250:
		return o, errors.New("-sources: 1 to 250")
	case o.rate < 1 || o.parallel < 1 || o.n < 1 || o.users < 1 || o.rounds < 1 || o.sockets < 1 || o.sessions < 1:
		return o, errors.New("-rate, -parallel, -n, -users, -rounds, -sockets and -sessions must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	limit, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	fmt.Fprintf(stderr, "wsload: open-file limit %d\n", limit)
	if o.mode == "idle" && uint64(o.n)+256 > limit {
		return fmt.Errorf("-n %d sockets need more open files than the limit %d", o.n, limit)
	}
	t := newTool(o, stderr)
	if o.mode == "idle" {
		return t.idle(ctx, stdout)
	}
	return t.logoutAll(ctx, stdout)
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit (each socket is a file) and returns it.
func raiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}
