// Command loadgen is a GraphQL-over-HTTP load generator for gqlauth and the benchmark peers in
// /work/shared/bench (the Node/Apollo peer with the same API core, and the gqlgen baseline).
//
// It prints exactly one JSON line with the result on stdout; progress and diagnostics go to stderr.
// Run `loadgen -h` for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain parses args, runs the load test and returns the exit status: 0 after a run (even with
// request errors: they are in the JSON), 1 when setup failed, 2 on a usage error.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && (args[0] == "-summarize" || args[0] == "--summarize") {
		if err := summarize(args[1], stdout); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && (args[0] == "-soak-report" || args[0] == "--soak-report") {
		return soakReportMain(args[1:], stdout, stderr)
	}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if err := Run(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "run loadgen -h for usage")
			return 2
		}
		return 1
	}
	return 0
}

const usageHead = `Usage: loadgen [flags]

GraphQL-over-HTTP load generator. Virtual users (VUs) each send one request at a time, as fast as
the server answers, for -d (after -warmup) or until -n requests, whichever comes first.

Scenarios:
  me        each VU logs in once (setup), then repeats  query Me { me { id email } }  with its bearer token
  refresh   each VU logs in once (setup), then chains refreshToken, always with the token it got last;
            a broken chain (an error) is counted, and the VU logs in again (not counted)
  login     VUs loop login on the -accounts shared accounts, round robin
  register  every request registers a fresh e-mail (<prefix>-reg-<vu>-<seq>@example.com)
  trivial   posts -trivial-query ({ __typename }; use '{ hello }' for the gqlgen baseline)
  mixed     each VU repeats a user journey, every request counted: register a fresh e-mail (every
            -register-every-th journey of the VU) or else login to a shared account; -mixed-me × me;
            -mixed-refresh × (refreshToken with the token got last, then me with the new access
            token); logout with the refresh token. An error ends the journey; the VU starts a new one

Setup (not timed): for me, login, refresh and mixed, -accounts accounts <prefix>-<i>@example.com
are registered (or logged into if they exist already). trivial sends its query once to check it.

A request is OK only with HTTP 200, no "errors" and the expected data field. Errors are counted by
errors[0].extensions.code, else HTTP_<status>, TRANSPORT (no response), DECODE (not JSON or no
expected data), COOKIE_MODE (refreshToken came back null). Latencies are of OK requests only.

Output: one JSON line on stdout:
  {"label","scenario","url","concurrency","duration_s","ok","errors","rps",
   "latency_ms":{"p50","p90","p99","max","mean"},"accounts","started_at"}
duration_s and started_at are of the measured window (after warm-up); accounts is 0 for trivial
and register. mixed adds "ops": per operation (register, login, me, refresh, logout)
{"ok","errors":{code:count},"p50","p99"}. Exit status: 0 after a run (even with errors), 1 on
setup failure, 2 on usage error.

With -interval D, every D of the measured time one more line comes first (flushed at once), of the
requests (all operations) that completed in that window; the last window ends with the run:
  {"kind":"window","label","window":n,"t_s","duration_s","ok","errors","rps",
   "latency_ms":{"p50","p99","max"}}
t_s is seconds since the measure start at the window's end. The result line comes last.

Summary: loadgen -summarize FILE prints a Markdown table (median over rounds per server and
scenario) of the JSON lines in FILE, as scripts/bench.sh collects them; window lines are skipped.

Soak report: loadgen -soak-report [-commit C] [-duration D] [-note TEXT] JSONL SAMPLES prints the
Markdown report of scripts/soak.sh: the window and result lines of a mixed run (JSONL) joined with
the server samples (SAMPLES: tab-separated, with the header line label unix_s rss_mib goroutines
pool_in_use pool_open pg_backends).

Flags:
`

func parseFlags(args []string, stderr io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080/graphql", "GraphQL endpoint; must be a loopback address unless -allow-remote")
	fs.StringVar(&o.Scenario, "scenario", "", "me | refresh | login | register | trivial | mixed (required)")
	fs.IntVar(&o.Concurrency, "c", 16, "concurrency: number of virtual users")
	fs.DurationVar(&o.Duration, "d", 10e9, "measured duration, after warm-up (0 = no limit; then -n is required)")
	fs.Int64Var(&o.Requests, "n", 0, "stop after this many measured (post-warm-up) requests (0 = no cap)")
	fs.IntVar(&o.Accounts, "accounts", 0, "pre-registered accounts the VUs share for login/me/refresh/mixed (default = -c)")
	fs.StringVar(&o.Password, "password", "loadgen password 1", "password of the accounts (and of registered ones)")
	fs.StringVar(&o.TrivialQuery, "trivial-query", "{ __typename }", "query of the trivial scenario (an anonymous query is sent named Trivial)")
	fs.DurationVar(&o.Timeout, "timeout", 10e9, "timeout per request")
	fs.DurationVar(&o.Warmup, "warmup", 1e9, "warm-up before measuring; its requests are not counted")
	fs.StringVar(&o.Label, "label", "", "free text copied into the output")
	fs.StringVar(&o.EmailPrefix, "email-prefix", "", "prefix of account e-mails (default lg-<random>)")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a URL whose host is not a loopback address")
	fs.DurationVar(&o.Progress, "progress", 2e9, "print progress to stderr this often (0 = never)")
	fs.DurationVar(&o.Interval, "interval", 0, "print a window line to stdout every this much of the measured time (0 = never)")
	fs.IntVar(&o.RegisterEvery, "register-every", 4, "mixed: every n-th journey of a VU starts with register instead of login (0 = never)")
	fs.IntVar(&o.MixedMe, "mixed-me", 8, "mixed: me queries after the register or login")
	fs.IntVar(&o.MixedRefresh, "mixed-refresh", 3, "mixed: refreshToken calls in the chain, each followed by one me")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\nrun loadgen -h for usage\n", fs.Args())
		return o, usageError{errors.New("unexpected arguments")}
	}
	return o, nil
}
