// Command authctl administers a gqlauth database: migrate it, create users, change roles, revoke
// sessions, and purge expired rows. It reads the same environment as the server (DATABASE_URL,
// DATA_DIR, …; see README.md), so run it with the server's configuration.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/config"
	"gqlauth/fanout"
	"gqlauth/models"
	"gqlauth/observe"
	"gqlauth/password"
	"gqlauth/store"
)

const usage = `authctl administers a gqlauth database, with the server's configuration (DATABASE_URL, …).

Usage:
  authctl migrate [up]                             apply the pending migrations (create or update
                                                   the schema); the server does this at start
                                                   unless MIGRATE_ON_START=false
  authctl migrate status                           list the migrations, applied or pending
  authctl migrate down [-force]                    roll back the latest migration; rolling back the
                                                   first one drops every table and needs -force
  authctl user create -email E [-role USER|ADMIN]  create a user; the password is read from stdin
                                                   (one line); prints the new user's id
  authctl user set-role -email E -role USER|ADMIN  change a role (effective at the user's next token
                                                   refresh; revoke-sessions to force a new login)
  authctl user revoke-sessions -email E            revoke every live session of a user
  authctl user delete -email E                     delete a user: revokes every session first, frees
                                                   the e-mail; the row is purged after the retention
  authctl user disable-totp -email E               turn a user's TOTP off and delete their recovery
                                                   codes (a user locked out of the second factor;
                                                   verify who is asking first)
  authctl purge [-retention D]                     delete expired and revoked sessions and expired
                                                   refresh tokens older than D (default JANITOR_RETENTION)
  authctl keys rotate                              rotate the signing keys
  authctl <command> -h                             help for a command

Exit status: 0 ok, 1 error, 2 usage error.
`

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// maxPasswordBytes bounds what is read from stdin: far above auth.MaxPasswordLength characters.
const maxPasswordBytes = 4 << 10

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
}

// usageError is a wrong command line: exit 2 with the usage text.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errHelp asks for the usage text on stdout and exit 0.
var errHelp = errors.New("help requested")

// cli is one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	cfg            *config.Config
}

// run executes authctl with args (without the program name) and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, lookup: lookup}
	err := c.dispatch(context.Background(), args)
	var uerr *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "authctl: %s\n\n%s", uerr.msg, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "authctl: %s\n", message(err))
		return exitError
	}
}

// message turns an error into a sentence for an operator.
func message(err error) string {
	var verr *auth.ValidationError
	if errors.As(err, &verr) {
		return "invalid " + verr.Field + ": " + verr.Message
	}
	return err.Error()
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		return errHelp
	case "migrate":
		return c.migrate(ctx, rest)
	case "purge":
		return c.purge(ctx, rest)
	case "user", "keys":
		if len(rest) == 0 {
			return usagef("%s: missing subcommand", cmd)
		}
		sub := cmd + " " + rest[0]
		switch sub {
		case "user create":
			return c.userCreate(ctx, rest[1:])
		case "user set-role":
			return c.userSetRole(ctx, rest[1:])
		case "user revoke-sessions":
			return c.userRevokeSessions(ctx, rest[1:])
		case "user delete":
			return c.userDelete(ctx, rest[1:])
		case "user disable-totp":
			return c.userDisableTOTP(ctx, rest[1:])
		case "keys rotate":
			return c.keysRotate(rest[1:])
		}
		if h := rest[0]; h == "-h" || h == "-help" || h == "--help" {
			return errHelp
		}
		return usagef("unknown command %q", sub)
	}
	return usagef("unknown command %q", cmd)
}

// parse parses a command's flags. -h prints the usage text; positional arguments are refused.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// config loads the configuration (once).
func (c *cli) config() (*config.Config, error) {
	if c.cfg == nil {
		cfg, err := config.LoadFrom(c.lookup)
		if err != nil {
			return nil, fmt.Errorf("configuration:\n%w", err)
		}
		c.cfg = cfg
	}
	return c.cfg, nil
}

// open loads the configuration and opens (and migrates) the database. Only migrate and admin use it:
// every other command goes through the auth package's Admin.
func (c *cli) open(ctx context.Context) (*store.DB, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// admin builds the auth package's Admin with the server's configuration: its database, its password
// parameters, its audit log (on stderr, in LOG_FORMAT at LOG_LEVEL) and, with REDIS_URL, its Redis
// revocation fan-out, so that running instances drop revoked sessions at once instead of at their
// next poll. The returned function releases the database and Redis.
func (c *cli) admin(ctx context.Context) (*auth.Admin, func(), error) {
	cfg, err := c.config()
	if err != nil {
		return nil, nil, err
	}
	log := observe.NewLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	opts := auth.AdminOptions{Password: password.Default, Logger: log}
	var client *redis.Client
	if cfg.RedisURL != "" {
		ropts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		// The server's timeouts: a dead Redis costs a revocation its broadcast, never the command.
		ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
		client = redis.NewClient(ropts)
		opts.Broadcaster = fanout.NewRedis(client, fanout.Channel, log)
	}
	db, err := c.open(ctx)
	if err != nil {
		if client != nil {
			_ = client.Close()
		}
		return nil, nil, err
	}
	release := func() {
		_ = db.Close()
		if client != nil {
			_ = client.Close()
		}
	}
	return auth.NewAdmin(db, opts), release, nil
}

// roleFlag parses -role.
func roleFlag(cmd, raw string) (models.Role, error) {
	r := models.Role(strings.ToUpper(strings.TrimSpace(raw)))
	if !r.IsValid() {
		return "", usagef("%s: -role must be USER or ADMIN (got %q)", cmd, raw)
	}
	return r, nil
}

// emailFlag checks that -email was given and normalizes it.
func emailFlag(cmd, raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		return "", usagef("%s: -email is required", cmd)
	}
	return auth.NormalizeEmail(raw)
}

func (c *cli) userCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	email := fs.String("email", "", "e-mail address of the new user")
	roleRaw := fs.String("role", string(models.RoleUser), "USER or ADMIN")
	if err := parse(fs, args); err != nil {
		return err
	}
	role, err := roleFlag(fs.Name(), *roleRaw)
	if err != nil {
		return err
	}
	addr, err := emailFlag(fs.Name(), *email)
	if err != nil {
		return err
	}
	if _, err := c.config(); err != nil {
		return err
	}
	pw, err := c.readPassword()
	if err != nil {
		return err
	}
	admin, release, err := c.admin(ctx)
	if err != nil {
		return err
	}
	defer release()
	u, err := admin.CreateUser(ctx, *email, pw, role)
	if errors.Is(err, auth.ErrEmailTaken) {
		return fmt.Errorf("a user with e-mail %s already exists", addr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, u.ID)
	return nil
}

// readPassword reads one line from stdin, without its line ending. On a terminal it prompts on
// stderr first (the input is echoed: golang.org/x/term is not a dependency; pipe the password in to
// keep it off the screen).
func (c *cli) readPassword() (string, error) {
	if f, ok := c.stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(c.stderr, "Password (shown as typed): ")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(c.stdin, maxPasswordBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	if errors.Is(err, io.EOF) && len(line) == maxPasswordBytes {
		return "", fmt.Errorf("read password from stdin: longer than %d bytes", maxPasswordBytes)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	return line, nil
}

// openUser builds the Admin and finds the user with the e-mail (canonical, or as typed for an account
// stored before addresses were canonicalised, like a login does); on error nothing is left open.
func (c *cli) openUser(ctx context.Context, email, typed string) (*auth.Admin, *models.User, func(), error) {
	admin, release, err := c.admin(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	u, err := admin.UserByEmail(ctx, typed)
	if err != nil {
		release()
		if errors.Is(err, auth.ErrNotFound) {
			return nil, nil, nil, fmt.Errorf("no user with e-mail %s", email)
		}
		return nil, nil, nil, fmt.Errorf("find user: %w", err)
	}
	return admin, u, release, nil
}

func (c *cli) userSetRole(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user set-role", flag.ContinueOnError)
	email := fs.String("email", "", "e-mail address of the user")
	roleRaw := fs.String("role", "", "USER or ADMIN")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *roleRaw == "" {
		return usagef("%s: -role is required", fs.Name())
	}
	role, err := roleFlag(fs.Name(), *roleRaw)
	if err != nil {
		return err
	}
	addr, err := emailFlag(fs.Name(), *email)
	if err != nil {
		return err
	}
	admin, u, release, err := c.openUser(ctx, addr, *email)
	if err != nil {
		return err
	}
	defer release()
	if err := admin.SetRole(ctx, u.ID, role); err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("no user with e-mail %s", addr)
		}
		return err
	}
	fmt.Fprintf(c.stdout, "%s: role %s (was %s); existing access tokens keep the old role until they are refreshed\n", addr, role, u.Role)
	return nil
}

// onUser runs a command whose only flag is -email: it builds the Admin, finds the user and calls fn.
func (c *cli) onUser(ctx context.Context, name string, args []string, fn func(admin *auth.Admin, u *models.User, addr string) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	email := fs.String("email", "", "e-mail address of the user")
	if err := parse(fs, args); err != nil {
		return err
	}
	addr, err := emailFlag(fs.Name(), *email)
	if err != nil {
		return err
	}
	admin, u, release, err := c.openUser(ctx, addr, *email)
	if err != nil {
		return err
	}
	defer release()
	return fn(admin, u, addr)
}

func (c *cli) userRevokeSessions(ctx context.Context, args []string) error {
	return c.onUser(ctx, "user revoke-sessions", args, func(admin *auth.Admin, u *models.User, addr string) error {
		n, err := admin.RevokeSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "revoked %d sessions of %s (running instances refuse their access tokens within about 1s)\n", n, addr)
		return nil
	})
}

func (c *cli) userDelete(ctx context.Context, args []string) error {
	return c.onUser(ctx, "user delete", args, func(admin *auth.Admin, u *models.User, addr string) error {
		n, err := admin.DeleteUser(ctx, u.ID)
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("no user with e-mail %s", addr)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "deleted %s (%s) and revoked its %d sessions (running instances refuse its access tokens within about 1s)\n", addr, u.ID, n)
		return nil
	})
}

func (c *cli) userDisableTOTP(ctx context.Context, args []string) error {
	return c.onUser(ctx, "user disable-totp", args, func(admin *auth.Admin, u *models.User, addr string) error {
		err := admin.DisableTOTP(ctx, u.ID)
		if errors.Is(err, auth.ErrConflict) {
			return fmt.Errorf("TOTP is not enabled for %s", addr)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "disabled TOTP of %s and deleted its recovery codes; its next login needs the password only\n", addr)
		return nil
	})
}

func (c *cli) purge(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	retention := fs.Duration("retention", 0, "keep expired and revoked rows this long (default JANITOR_RETENTION)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	keep := cfg.JanitorRetention
	if *retention != 0 {
		keep = *retention
	}
	// The same floor as JANITOR_RETENTION: a revoked session must outlive its access tokens and
	// every instance's revocation poll.
	if minimum := cfg.AccessTokenTTL + time.Minute; keep < minimum {
		return usagef("purge: -retention must be at least ACCESS_TOKEN_TTL + 1m = %s (got %s)", minimum, keep)
	}
	admin, release, err := c.admin(ctx)
	if err != nil {
		return err
	}
	defer release()
	n, err := admin.Purge(ctx, time.Now().Add(-keep), 500)
	if err != nil {
		return fmt.Errorf("purge (%d rows deleted before the error): %w", n, err)
	}
	fmt.Fprintf(c.stdout, "purged %d rows (sessions and refresh tokens older than %s)\n", n, keep)
	return nil
}

func (c *cli) keysRotate(args []string) error {
	if err := parse(flag.NewFlagSet("keys rotate", flag.ContinueOnError), args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	return rotateKeys(cfg, c.stdout)
}
