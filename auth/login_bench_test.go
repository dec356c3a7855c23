package auth_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
	"gqlauth/password"
)

const (
	loginBenchEmail    = "login-bench@example.com"
	loginBenchPassword = "correct horse battery staple"
)

// newLoginBenchService opens a fresh SQLite store and returns a Service hashing with the real cost
// (password.Default) and no rate limiter, with one registered user (loginBenchEmail,
// loginBenchPassword). hashConcurrency 0 means the default (runtime.NumCPU()). Logs are discarded:
// every login would otherwise write a line.
func newLoginBenchService(b *testing.B, hashConcurrency int) *auth.Service {
	b.Helper()
	svc, _ := newTestService(b, testdb.SQLite(b), auth.Options{Password: password.Default, HashConcurrency: hashConcurrency})
	if _, err := svc.Register(context.Background(), loginBenchEmail, loginBenchPassword, auth.Client{}); err != nil {
		b.Fatal(err)
	}
	return svc
}

// BenchmarkLoginTiming shows that login timing does not reveal which e-mails have accounts. With
// the real argon2id cost (password.Default) and no rate limiter, it alternates a login for an
// unknown e-mail with a login for a known e-mail and a wrong password (both must fail with
// ErrInvalidCredentials), timing each call. One iteration is one such pair, so ns/op is the cost
// of two failed logins. It reports the median of each series (unknown-median-ms, wrong-median-ms)
// and their ratio (unknown/wrong), and fails when the ratio is outside [0.8, 1.2] once at least 20
// pairs were measured (a -benchtime=1x smoke run never fails on it).
//
//	go test -run='^$' -bench='LoginTiming' -benchtime=60x ./auth/
func BenchmarkLoginTiming(b *testing.B) {
	ctx := context.Background()
	svc := newLoginBenchService(b, 0)
	var unknown, wrong []time.Duration
	for b.Loop() {
		start := time.Now()
		_, err := svc.Login(ctx, "nobody@example.com", loginBenchPassword, auth.Client{})
		unknown = append(unknown, time.Since(start))
		if !errors.Is(err, auth.ErrInvalidCredentials) {
			b.Fatalf("login with unknown e-mail: got %v, want ErrInvalidCredentials", err)
		}
		start = time.Now()
		_, err = svc.Login(ctx, loginBenchEmail, "wrong password!", auth.Client{})
		wrong = append(wrong, time.Since(start))
		if !errors.Is(err, auth.ErrInvalidCredentials) {
			b.Fatalf("login with wrong password: got %v, want ErrInvalidCredentials", err)
		}
	}
	mu, mw := median(unknown), median(wrong)
	ratio := float64(mu) / float64(mw)
	b.ReportMetric(float64(mu)/float64(time.Millisecond), "unknown-median-ms")
	b.ReportMetric(float64(mw)/float64(time.Millisecond), "wrong-median-ms")
	b.ReportMetric(ratio, "unknown/wrong")
	if len(unknown) >= 20 && (ratio < 0.8 || ratio > 1.2) {
		b.Errorf("unknown-e-mail/wrong-password median login time ratio = %.3f over %d pairs (%v vs %v), want within [0.8, 1.2]: timing reveals which accounts exist",
			ratio, len(unknown), mu, mw)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// floodSize is how many logins BenchmarkLoginFlood starts at once.
const floodSize = 64

// BenchmarkLoginFlood shows what the hashing bound (Options.HashConcurrency) does to memory when
// 64 logins (right password, real argon2id cost of 19 MiB each) arrive at once: "bounded" uses the
// default bound (runtime.NumCPU()), "unbounded" lets all 64 hash together. One iteration is one
// flood. While it runs, a sampler reads the heap ("/memory/classes/heap/objects:bytes") every
// millisecond; the benchmark reports the highest value seen (peak-heap-MiB), that peak minus the
// heap just after the runtime.GC() that precedes each flood (flood-heap-MiB), throughput
// (logins/s, over the floods only), and the process's VmHWM from /proc/self/status (vmhwm-MiB).
//
// VmHWM is the peak resident set of the whole process and never goes down, so it only describes a
// sub-benchmark that is the first (and only) to run in its process. Run each in its own process
// (anchored: a plain "LoginFlood/bounded" also matches "unbounded"):
//
//	go test -run='^$' -bench='LoginFlood/^bounded$' -benchtime=3x ./auth/
//	go test -run='^$' -bench='LoginFlood/^unbounded$' -benchtime=3x ./auth/
func BenchmarkLoginFlood(b *testing.B) {
	b.Run("bounded", func(b *testing.B) { benchLoginFlood(b, runtime.NumCPU()) })
	b.Run("unbounded", func(b *testing.B) { benchLoginFlood(b, floodSize) })
}

func benchLoginFlood(b *testing.B, hashConcurrency int) {
	ctx := context.Background()
	svc := newLoginBenchService(b, hashConcurrency)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var (
		peak, flood uint64 // highest heap seen; highest (peak - baseline) of one flood
		floodTime   time.Duration
		floods      int
	)
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		baseline := heap()
		release := make(chan struct{})
		errs := make(chan error, floodSize)
		var wg sync.WaitGroup
		for range floodSize {
			wg.Go(func() {
				<-release
				if _, err := svc.Login(ctx, loginBenchEmail, loginBenchPassword, auth.Client{}); err != nil {
					errs <- err
				}
			})
		}
		stop, sampled := make(chan struct{}), make(chan uint64)
		go func() {
			maxHeap := baseline
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				if h := heap(); h > maxHeap {
					maxHeap = h
				}
				select {
				case <-stop:
					sampled <- maxHeap
					return
				case <-tick.C:
				}
			}
		}()
		b.StartTimer()
		start := time.Now()
		close(release)
		wg.Wait()
		floodTime += time.Since(start)
		b.StopTimer()
		close(stop)
		p := <-sampled
		close(errs)
		for err := range errs {
			b.Fatalf("login during flood: %v", err)
		}
		peak = max(peak, p)
		flood = max(flood, p-baseline)
		floods++
		b.StartTimer()
	}
	const mib = 1 << 20
	b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
	b.ReportMetric(float64(flood)/mib, "flood-heap-MiB")
	if floodTime > 0 {
		b.ReportMetric(float64(floods*floodSize)/floodTime.Seconds(), "logins/s")
	}
	if kib, ok := vmHWMKiB(); ok {
		// Process-wide and monotonic: see BenchmarkLoginFlood.
		b.ReportMetric(float64(kib)/1024, "vmhwm-MiB")
	}
}

// vmHWMKiB returns the process's peak resident set size from /proc/self/status (Linux only).
func vmHWMKiB() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "12345", "kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}
