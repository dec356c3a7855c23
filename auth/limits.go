package auth

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"gqlauth/ratelimit"
)

// How the service counts attempts (all keys are stored as SHA-256 digests by the limiter):
//
//	login:ip:<addr>            failed logins per client address        LoginIPRate
//	login:net:<ipv6 /48>       failed logins per IPv6 site             LoginIPRate × netLimitFactor
//	login:ok:<addr>            successful logins per client address    LoginSuccessRate
//	login:account:<email>|<addr> failed logins (and wrong currentPassword) per account and address  LoginRate
//	login:acct:<email>         the same per account, from every address; past it, back-off  LoginAccountRate
//	register:ip:<addr>, register:net:<ipv6 /48>   registrations        RegisterRate (× netLimitFactor)
//	reset:ip:<addr>, reset:net:<ipv6 /48>   password-reset requests    ResetIPRate (× netLimitFactor)
//	reset:email:<email>        password-reset requests per address, known or not   ResetEmailRate
//	mail:to:<email>            verification and change-email links per recipient    ResetEmailRate
//
// <addr> is an IPv4 address, or the /64 of an IPv6 address: one host is usually given a whole /64,
// so counting its 2^64 addresses apart would give it 2^64 budgets. A /48 (a site) gets
// netLimitFactor times the budget of one address. The address keys are counted first: once an
// address is over its budget, nothing is counted or stored for the accounts it names, so a flood of
// refused requests with fresh e-mail addresses does not grow the limiter.
//
// Attempts are counted before the password is looked at, and an address or account over its limit
// is refused without checking it (even when it is right), so guessing cannot go faster than the
// limit; unknown e-mails are counted exactly like known ones. A success takes its failure counts
// back; a failure takes its success count back.

// netLimitFactor is how many addresses' worth of attempts an IPv6 /48 gets.
const netLimitFactor = 8

// maxBackoff caps the wait that the account-wide back-off imposes between failed logins.
const maxBackoff = 15 * time.Minute

// clientKeys are the limiter key parts of a client address: addr is an IPv4 address or an IPv6 /64,
// net an IPv6 /48 ("" for IPv4).
type clientKeys struct{ addr, net string }

func keysFor(ip string) clientKeys {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return clientKeys{addr: ip} // not an address (no proxy header, a test): counted as it is
	}
	a = a.Unmap()
	if a.Is4() {
		return clientKeys{addr: a.String()}
	}
	p64, _ := a.Prefix(64)
	p48, _ := a.Prefix(48)
	return clientKeys{addr: p64.String(), net: p48.String()}
}

func netRate(r ratelimit.Rate) ratelimit.Rate {
	if !r.Enabled() {
		return r
	}
	return ratelimit.Rate{Limit: r.Limit * netLimitFactor, Window: r.Window}
}

// loginAccountKey is the limiter key of an account as tried from one address.
func loginAccountKey(email string, k clientKeys) string {
	return "login:account:" + email + "|" + k.addr
}

// accountKey is the limiter key of an account as tried from anywhere (its counter and its block).
func accountKey(email string) string { return "login:acct:" + email }

// attempt is one limiter key with the rate it was counted under.
type attempt struct {
	key  string
	rate ratelimit.Rate
}

// tally counts one request's attempts and remembers the keys, so that the outcome can adjust them.
type tally struct {
	s       *Service
	counted []attempt
}

func (s *Service) tally() *tally { return &tally{s: s} }

// hit counts one attempt for key under r and returns the count in the window. Over the limit it
// returns a *RateLimitedError. A limiter failure is logged and lets the attempt through: the Redis
// limiter already falls back to memory, so this only happens when both fail, and refusing every
// login then would be worse.
func (t *tally) hit(ctx context.Context, key string, r ratelimit.Rate) (int, error) {
	l := t.s.opts.Limiter
	if l == nil || !r.Enabled() {
		return 0, nil
	}
	res, err := l.Hit(ctx, key, r)
	if err != nil {
		t.s.log.Warn("rate limiter failed; attempt allowed", "err", err)
		return 0, nil
	}
	t.counted = append(t.counted, attempt{key, r})
	if !res.Allowed {
		return res.Count, &RateLimitedError{RetryAfter: res.RetryAfter}
	}
	return res.Count, nil
}

// count counts one attempt for key under r and returns the count in the window, never refusing: the
// account-wide count only decides the back-off (see backOff).
func (t *tally) count(ctx context.Context, key string, r ratelimit.Rate) int {
	n, _ := t.hit(ctx, key, r)
	return n
}

// undo takes back the attempt counted for key (a failure that turned out a success, or the reverse).
func (t *tally) undo(ctx context.Context, key string) {
	for _, a := range t.counted {
		if a.key == key {
			if err := t.s.opts.Limiter.Undo(ctx, key); err != nil {
				t.s.log.Warn("rate limiter undo failed", "err", err)
			}
			return
		}
	}
}

// reset forgets key's count altogether (an account's failures, once it logged in).
func (t *tally) reset(ctx context.Context, key string) {
	for _, a := range t.counted {
		if a.key == key {
			if err := t.s.opts.Limiter.Reset(ctx, key); err != nil {
				t.s.log.Warn("rate limiter reset failed", "err", err)
			}
			return
		}
	}
}

// takeBack undoes every counted attempt when err says a dependency was unavailable or the request ran
// out of time: the service could not judge the attempt, and a client that retries through a database
// outage must not find itself rate limited once the database is back. Other errors leave the counts.
func (t *tally) takeBack(ctx context.Context, err error) {
	if !(errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)) {
		return
	}
	ctx = context.WithoutCancel(ctx) // the request's own deadline may be what ran out
	for _, a := range t.counted {
		if err := t.s.opts.Limiter.Undo(ctx, a.key); err != nil {
			t.s.log.Warn("rate limiter undo failed", "err", err)
		}
	}
}

// blocked returns a *RateLimitedError while the account-wide back-off of email is running.
func (s *Service) blocked(ctx context.Context, email string) error {
	if s.opts.Limiter == nil || !s.opts.LoginAccountRate.Enabled() {
		return nil
	}
	wait, err := s.opts.Limiter.Blocked(ctx, accountKey(email))
	if err != nil {
		s.log.Warn("rate limiter failed; attempt allowed", "err", err)
		return nil
	}
	if wait > 0 {
		return &RateLimitedError{RetryAfter: wait}
	}
	return nil
}

// backOff starts the account's wait after a failed attempt that was the n-th in its window: past
// LoginAccountRate.Limit failures from any addresses, each further one makes the next attempt wait
// 1 s, 2 s, 4 s … up to maxBackoff. It slows guessing spread over many addresses (which the
// per-address limits cannot see) without locking the owner out for long.
func (s *Service) backOff(ctx context.Context, email string, n int) {
	over := n - s.opts.LoginAccountRate.Limit
	if s.opts.Limiter == nil || !s.opts.LoginAccountRate.Enabled() || over <= 0 {
		return
	}
	wait := maxBackoff
	if over <= 20 {
		wait = min(time.Second<<(over-1), maxBackoff)
	}
	if err := s.opts.Limiter.Block(ctx, accountKey(email), wait); err != nil {
		s.log.Warn("rate limiter block failed", "err", err)
	}
}
