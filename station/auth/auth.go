package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// Sentinel errors.
var (
	ErrUnauthenticated = fault.New(fault.Unauthenticated, "unauthenticated", "unauthenticated")
	ErrForbidden       = fault.New(fault.Forbidden, "forbidden", "forbidden")
	ErrInvalidOperator = fault.New(fault.Invalid, "invalid_operator", "invalid operator")
	ErrOperatorExists  = fault.New(fault.Conflict, "operator_exists", "operator exists")
	ErrInvalidTerminal = fault.New(fault.Invalid, "invalid_terminal_id", "invalid terminal id")
)

// Role is what an operator may do.
type Role string

const (
	RoleOperator   Role = "operator"
	RoleSupervisor Role = "supervisor"
	RoleOps        Role = "ops"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleOperator || r == RoleSupervisor || r == RoleOps }

// Kind says whether a principal is a person or a machine.
type Kind string

const (
	KindOperator Kind = "operator"
	KindSorter   Kind = "sorter"
)

// Principal is an authenticated caller.
type Principal struct {
	Kind      Kind   `json:"kind"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	StationID string `json:"station_id"`
	Role      Role   `json:"role"`
	// Terminal is the device an operator's session was opened on, bound to
	// the token at login; empty for a machine or a session opened without
	// one.
	Terminal string `json:"terminal_id,omitempty"`
}

// HasRole reports whether p holds one of roles.
func (p Principal) HasRole(roles ...Role) bool {
	for _, r := range roles {
		if p.Role == r {
			return true
		}
	}
	return false
}

// CanActAt reports whether p may act on objects of station. Ops staff manage
// rollouts network-wide; everyone else acts only at their own station.
func (p Principal) CanActAt(station string) bool {
	return p.StationID == station
}

// Operator is a person who can log in.
type Operator struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	StationID string `json:"station_id"`
	Role      Role   `json:"role"`
}

// Session is an issued bearer token. Token is only ever shown once.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Operator  Operator  `json:"operator"`
	// TerminalID is the terminal the token is bound to, if one was named.
	TerminalID string `json:"terminal_id,omitempty"`
}

var (
	operatorIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$`)
	terminalPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// ValidTerminalID reports whether s can name a terminal: 1 to 64 letters,
// digits, dots, dashes or underscores. It becomes part of a rate-limit key,
// so anything longer or stranger is refused rather than stored.
func ValidTerminalID(s string) bool { return terminalPattern.MatchString(s) }

// ValidSiteID reports whether s is a site id in its normal form (SG-H01).
func ValidSiteID(s string) bool {
	id, err := ident.ParseSiteID(s)
	return err == nil && string(id) == s
}

// Service authenticates operators against PostgreSQL.
type Service struct {
	db       *pgxpool.Pool
	tokenTTL time.Duration
	now      func() time.Time
	// dummyHash is compared against when the operator is unknown, so an
	// unknown id costs as much as a wrong password and the two look alike.
	dummyHash []byte
	cost      int
}

// Option adjusts a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests of expiry).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithBcryptCost sets the password hashing cost (tests use the minimum).
func WithBcryptCost(cost int) Option { return func(s *Service) { s.cost = cost } }

// NewService builds the operator authentication service.
func NewService(db *pgxpool.Pool, tokenTTL time.Duration, opts ...Option) *Service {
	s := &Service{db: db, tokenTTL: tokenTTL, now: time.Now, cost: bcrypt.DefaultCost}
	for _, o := range opts {
		o(s)
	}
	s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not-a-real-password"), s.cost)
	return s
}

// AddOperator creates an operator with a password.
func (s *Service) AddOperator(ctx context.Context, op Operator, password string) error {
	if !operatorIDPattern.MatchString(op.ID) {
		return fmt.Errorf("%w: id must be 2-64 letters, digits, dot, dash or underscore", ErrInvalidOperator)
	}
	if !ValidSiteID(op.StationID) {
		return fmt.Errorf("%w: station %q is not a site id like SG-H01", ErrInvalidOperator, op.StationID)
	}
	if !op.Role.Valid() {
		return fmt.Errorf("%w: role %q is not operator, supervisor or ops", ErrInvalidOperator, op.Role)
	}
	if len(password) < 8 || len(password) > 72 {
		return fmt.Errorf("%w: password must be 8 to 72 characters", ErrInvalidOperator)
	}
	if op.Name == "" {
		op.Name = op.ID
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return fmt.Errorf("auth: hash password: %w", err)
	}
	tag, err := s.db.Exec(ctx,
		`INSERT INTO operators (id, name, station_id, role, password_hash) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (id) DO NOTHING`, op.ID, op.Name, op.StationID, string(op.Role), string(hash))
	if err != nil {
		return fmt.Errorf("auth: add operator %s: %w", op.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: add operator %s: %w", op.ID, ErrOperatorExists)
	}
	return nil
}

// Login checks a password and issues a token. Unknown operators and wrong
// passwords give the same error after the same work.
func (s *Service) Login(ctx context.Context, operatorID, password string) (Session, error) {
	return s.LoginAt(ctx, operatorID, password, "")
}

// LoginAt is Login from a named terminal (empty: none). The terminal is
// stored with the token, so every request on that token counts against the
// terminal's rate limit whatever the client sends later.
func (s *Service) LoginAt(ctx context.Context, operatorID, password, terminalID string) (Session, error) {
	if terminalID != "" && !ValidTerminalID(terminalID) {
		return Session{}, fmt.Errorf("%w: terminal_id must be 1-64 letters, digits, dot, dash or underscore", ErrInvalidTerminal)
	}
	var op Operator
	var hash string
	var active bool
	err := s.db.QueryRow(ctx,
		`SELECT id, name, station_id, role, password_hash, active FROM operators WHERE id = $1`, operatorID).
		Scan(&op.ID, &op.Name, &op.StationID, &op.Role, &hash, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return Session{}, ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("auth: login: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil || !active {
		return Session{}, ErrUnauthenticated
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Session{}, fmt.Errorf("auth: token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	expires := s.now().Add(s.tokenTTL).UTC().Truncate(time.Second)
	if _, err := s.db.Exec(ctx,
		`INSERT INTO auth_tokens (token_hash, operator_id, expires_at, terminal_id) VALUES ($1, $2, $3, NULLIF($4, ''))`,
		hashToken(token), op.ID, expires, terminalID); err != nil {
		return Session{}, fmt.Errorf("auth: store token: %w", err)
	}
	return Session{Token: token, ExpiresAt: expires, Operator: op, TerminalID: terminalID}, nil
}

// Authenticate resolves a bearer token.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > 128 {
		return Principal{}, ErrUnauthenticated
	}
	var p Principal
	err := s.db.QueryRow(ctx,
		`SELECT o.id, o.name, o.station_id, o.role, coalesce(t.terminal_id, '')
		   FROM auth_tokens t JOIN operators o ON o.id = t.operator_id
		  WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND o.active`,
		hashToken(token), s.now()).Scan(&p.ID, &p.Name, &p.StationID, &p.Role, &p.Terminal)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: authenticate: %w", err)
	}
	p.Kind = KindOperator
	return p, nil
}

// Logout revokes a token; revoking an unknown or revoked token is not an
// error, so a retried logout succeeds.
func (s *Service) Logout(ctx context.Context, token string) error {
	if _, err := s.db.Exec(ctx,
		`UPDATE auth_tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL`,
		hashToken(token)); err != nil {
		return fmt.Errorf("auth: logout: %w", err)
	}
	return nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

type principalKey struct{}

// WithPrincipal stores p in ctx.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller stored by the auth middleware.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
