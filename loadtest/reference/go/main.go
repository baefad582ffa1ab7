// The Go reference server of the load-test suite: bareapi's benchmark and users-read routes,
// written the way a Go team writes a service — net/http with a ServeMux, pgx with one pgxpool
// (prepared statements cached per connection, pgx's default), encoding/json and html/template,
// GOMAXPROCS set to the worker count.
//
//	go-ref --listen 127.0.0.1:PORT [--workers N] [--pool-size N]
//
// DATABASE_URL (postgres://user:password@host:port/db) names the database, whose tables
// bareapi's migrations created. Once listening, one line `listening addr=IP:PORT` goes to stdout.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const (
	selectWorld     = "SELECT id, randomnumber FROM world WHERE id = $1"
	selectAllWorlds = "SELECT id, randomnumber FROM world"
	selectFortunes  = "SELECT id, message FROM fortune"
	// One statement for the whole batch, rows joined in id order so that concurrent batches lock
	// rows in the same order.
	updateWorlds = "UPDATE world SET randomnumber = v.rn " +
		"FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v " +
		"WHERE world.id = v.id"
	userColumns = "id, email, name, " +
		`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), ` +
		`to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
	selectUser        = "SELECT " + userColumns + " FROM users WHERE id = $1"
	selectUsers       = "SELECT " + userColumns + " FROM users WHERE id = ANY($1)"
	selectSessionUser = "SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()"

	worldRows      = 10000
	updateAttempts = 3
	extraFortune   = "Additional fortune added at request time."
	maxBatchIDs    = 100
	minGzipBytes   = 1024
)

type World struct {
	ID           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

type Fortune struct {
	ID      int32
	Message string
}

type User struct {
	ID        int64  `json:"id"`
	Email     string `json:"email,omitempty"` // the reader's own only, as bareapi
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

var fortunesPage = template.Must(template.New("fortunes").Parse(
	`<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>` +
		`{{range .}}<tr><td>{{.ID}}</td><td>{{.Message}}</td></tr>{{end}}</table></body></html>`))

type app struct {
	pool *pgxpool.Pool
	// `world` rows for /cached-queries, filled at start-up; a miss reads through.
	cacheMu sync.RWMutex
	cache   map[int32]World
}

func main() {
	listen := flag.String("listen", "", "address to listen on (port 0 picks a free port)")
	workers := flag.Int("workers", runtime.NumCPU(), "GOMAXPROCS")
	poolSize := flag.Int("pool-size", 16, "maximum number of database connections")
	flag.Parse()
	if *listen == "" || *workers < 1 || *poolSize < 1 {
		fail("usage: go-ref --listen IP:PORT [--workers N] [--pool-size N]")
	}
	runtime.GOMAXPROCS(*workers)
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		fail("DATABASE_URL must be set (postgres://user:password@host:port/db)")
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		fail(err.Error())
	}
	cfg.MaxConns = int32(*poolSize)
	ctx := context.Background()
	pool, err := pgxpool.ConnectConfig(ctx, cfg)
	if err != nil {
		fail(err.Error())
	}
	a := &app{pool: pool, cache: make(map[int32]World, worldRows)}
	if err := a.fillCache(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "go-ref: filling the world cache failed: %v\n", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", plaintext)
	mux.HandleFunc("/json", jsonHello)
	mux.HandleFunc("/db", a.db)
	mux.HandleFunc("/queries", a.queries)
	mux.HandleFunc("/fortunes", a.fortunes)
	mux.HandleFunc("/updates", a.updates)
	mux.HandleFunc("/cached-queries", a.cachedQueries)
	mux.HandleFunc("/api/users", a.listUsers)
	mux.HandleFunc("/api/users/", a.getUser)
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "go-ref")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err.Error())
	}
	fmt.Printf("listening addr=%s\n", ln.Addr())
	stop, cancel := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer cancel()
	go func() {
		<-stop.Done()
		_ = server.Shutdown(context.Background())
	}()
	if err := server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail(err.Error())
	}
	pool.Close()
}

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "go-ref: %s\n", msg)
	os.Exit(1)
}

func randomID() int32 { return int32(rand.Intn(worldRows)) + 1 }

// The `queries`/`count` rule: an integer clamped to 1..=500; missing, empty or non-integer values
// count as 1, and a number too large for any integer type as 500.
func queryCount(raw string) int {
	digits := strings.TrimPrefix(raw, "+")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 1
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > 500 {
		return 500
	}
	if n < 1 {
		return 1
	}
	return int(n)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func plaintext(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("Hello, World!"))
}

func jsonHello(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, struct {
		Message string `json:"message"`
	}{"Hello, World!"})
}

func (a *app) fillCache(ctx context.Context) error {
	rows, err := a.pool.Query(ctx, selectAllWorlds)
	if err != nil {
		return err
	}
	defer rows.Close()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	for rows.Next() {
		var w World
		if err := rows.Scan(&w.ID, &w.RandomNumber); err != nil {
			return err
		}
		a.cache[w.ID] = w
	}
	return rows.Err()
}

func (a *app) fetchWorld(ctx context.Context, id int32) (World, error) {
	var w World
	err := a.pool.QueryRow(ctx, selectWorld, id).Scan(&w.ID, &w.RandomNumber)
	return w, err
}

// fetchWorlds reads every row by its own statement, the statements sent together in one pgx
// batch (pipelined on one connection).
func (a *app) fetchWorlds(ctx context.Context, ids []int32) ([]World, error) {
	batch := &pgx.Batch{}
	for _, id := range ids {
		batch.Queue(selectWorld, id)
	}
	results := a.pool.SendBatch(ctx, batch)
	defer results.Close()
	worlds := make([]World, len(ids))
	for i := range ids {
		if err := results.QueryRow().Scan(&worlds[i].ID, &worlds[i].RandomNumber); err != nil {
			return nil, err
		}
	}
	return worlds, results.Close()
}

func (a *app) db(w http.ResponseWriter, r *http.Request) {
	world, err := a.fetchWorld(r.Context(), randomID())
	if err != nil {
		dbError(w, err)
		return
	}
	writeJSON(w, world)
}

func (a *app) queries(w http.ResponseWriter, r *http.Request) {
	n := queryCount(r.URL.Query().Get("queries"))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = randomID()
	}
	worlds, err := a.fetchWorlds(r.Context(), ids)
	if err != nil {
		dbError(w, err)
		return
	}
	writeJSON(w, worlds)
}

func (a *app) fortunes(w http.ResponseWriter, r *http.Request) {
	rows, err := a.pool.Query(r.Context(), selectFortunes)
	if err != nil {
		dbError(w, err)
		return
	}
	fortunes := make([]Fortune, 0, 16)
	for rows.Next() {
		var f Fortune
		if err := rows.Scan(&f.ID, &f.Message); err != nil {
			rows.Close()
			dbError(w, err)
			return
		}
		fortunes = append(fortunes, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		dbError(w, err)
		return
	}
	fortunes = append(fortunes, Fortune{0, extraFortune})
	sort.Slice(fortunes, func(i, j int) bool { return fortunes[i].Message < fortunes[j].Message })
	var page bytes.Buffer
	if err := fortunesPage.Execute(&page, fortunes); err != nil {
		internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(page.Bytes())
}

func (a *app) updates(w http.ResponseWriter, r *http.Request) {
	n := queryCount(r.URL.Query().Get("queries"))
	// Distinct ids: one batch never updates a row twice, so what is returned is what is stored.
	seen := make(map[int32]bool, n)
	ids := make([]int32, 0, n)
	for len(ids) < n {
		if id := randomID(); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	worlds, err := a.fetchWorlds(r.Context(), ids)
	if err != nil {
		dbError(w, err)
		return
	}
	numbers := make([]int32, n)
	for i := range worlds {
		rn := randomID()
		for rn == worlds[i].RandomNumber {
			rn = randomID()
		}
		worlds[i].RandomNumber = rn
		numbers[i] = rn
	}
	for attempt := 1; ; attempt++ {
		_, err = a.pool.Exec(r.Context(), updateWorlds, ids, numbers)
		var pgErr *pgconn.PgError
		// A deadlock between two concurrent batches, or a serialization failure.
		if err == nil || attempt >= updateAttempts || !errors.As(err, &pgErr) ||
			(pgErr.Code != "40P01" && pgErr.Code != "40001") {
			break
		}
	}
	if err != nil {
		dbError(w, err)
		return
	}
	writeJSON(w, worlds)
}

func (a *app) cachedQueries(w http.ResponseWriter, r *http.Request) {
	n := queryCount(r.URL.Query().Get("count"))
	worlds := make([]World, n)
	for i := range worlds {
		id := randomID()
		a.cacheMu.RLock()
		world, ok := a.cache[id]
		a.cacheMu.RUnlock()
		if !ok {
			var err error
			if world, err = a.fetchWorld(r.Context(), id); err != nil {
				dbError(w, err)
				return
			}
			a.cacheMu.Lock()
			a.cache[id] = world
			a.cacheMu.Unlock()
		}
		worlds[i] = world
	}
	writeJSON(w, worlds)
}

// The users-API reads, behind a bearer session token, as bareapi answers them: any signed-in
// user may read any user.

type problemError struct {
	status int
	detail string
	header [2]string
	errors []fieldError
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

var (
	errNoToken = &problemError{status: 401, detail: "This route needs an Authorization: Bearer token.",
		header: [2]string{"WWW-Authenticate", "Bearer"}}
	errInvalidToken = &problemError{status: 401, detail: "The bearer token is not valid (unknown, expired or revoked).",
		header: [2]string{"WWW-Authenticate", `Bearer error="invalid_token"`}}
	errUnavailable = &problemError{status: 503, detail: "The database is unavailable; retry shortly.",
		header: [2]string{"Retry-After", "1"}}
	errInternal = &problemError{status: 500, detail: "An internal error occurred."}
)

func invalidField(field, message string) *problemError {
	return &problemError{status: 400, detail: "The request has invalid fields; see errors.",
		errors: []fieldError{{field, message}}}
}

func writeProblem(w http.ResponseWriter, p *problemError) {
	body, _ := json.Marshal(struct {
		Type   string       `json:"type"`
		Title  string       `json:"title"`
		Status int          `json:"status"`
		Detail string       `json:"detail"`
		Errors []fieldError `json:"errors,omitempty"`
	}{"about:blank", http.StatusText(p.status), p.status, p.detail, p.errors})
	if p.header[0] != "" {
		w.Header().Set(p.header[0], p.header[1])
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.status)
	_, _ = w.Write(body)
}

func internalError(w http.ResponseWriter, err error) {
	log.Printf("go-ref: internal error: %v", err)
	writeProblem(w, errInternal)
}

// dbError answers 503 when the database cannot serve now (connection exceptions 08, insufficient
// resources 53, shutdown 57P01..03, or no SQLSTATE at all: I/O), 500 for anything else.
func dbError(w http.ResponseWriter, err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		writeProblem(w, errUnavailable)
		return
	}
	c := pgErr.Code
	if strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") || c == "57P01" || c == "57P02" || c == "57P03" {
		writeProblem(w, errUnavailable)
		return
	}
	internalError(w, err)
}

// positiveID parses a positive int64 as Rust's str::parse does (an optional leading '+').
func positiveID(raw string) (int64, bool) {
	digits := strings.TrimPrefix(raw, "+")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	return id, err == nil && id > 0
}

// bearerTokenHash is the SHA-256 of the request's bearer token (32 random bytes, 43 base64url
// characters).
func bearerTokenHash(r *http.Request) ([]byte, *problemError) {
	values, ok := r.Header["Authorization"]
	if !ok {
		return nil, errNoToken
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !found {
		return nil, errInvalidToken
	}
	if !strings.EqualFold(scheme, "bearer") {
		return nil, errNoToken
	}
	token = strings.TrimSpace(token)
	if len(token) != 43 {
		return nil, errInvalidToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != 32 {
		return nil, errInvalidToken
	}
	sum := sha256.Sum256(raw)
	return sum[:], nil
}

// signedIn checks the bearer token against the live sessions and runs `work` on the same
// connection, with the signed-in user's id.
func (a *app) signedIn(w http.ResponseWriter, r *http.Request, work func(*pgxpool.Conn, int64) error) bool {
	hash, perr := bearerTokenHash(r)
	if perr != nil {
		writeProblem(w, perr)
		return false
	}
	conn, err := a.pool.Acquire(r.Context())
	if err != nil {
		dbError(w, err)
		return false
	}
	defer conn.Release()
	var userID int64
	if err := conn.QueryRow(r.Context(), selectSessionUser, hash).Scan(&userID); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			writeProblem(w, errInvalidToken)
		} else {
			dbError(w, err)
		}
		return false
	}
	if err := work(conn, userID); err != nil {
		dbError(w, err)
		return false
	}
	return true
}

// scanUser reads a row of userColumns as `reader` may see it: the email to its owner alone.
func scanUser(row pgx.Row, reader int64) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.CreatedAt, &u.UpdatedAt)
	if u.ID != reader {
		u.Email = ""
	}
	return u, err
}

// getUser is `GET /api/users/{id}`.
func (a *app) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := positiveID(strings.TrimPrefix(r.URL.Path, "/api/users/"))
	if !ok {
		writeProblem(w, invalidField("id", "must be a positive integer"))
		return
	}
	var user User
	found := true
	if !a.signedIn(w, r, func(conn *pgxpool.Conn, reader int64) error {
		var err error
		user, err = scanUser(conn.QueryRow(r.Context(), selectUser, id), reader)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	}) {
		return
	}
	if !found {
		writeProblem(w, &problemError{status: 404, detail: "No user has this id."})
		return
	}
	body, err := json.Marshal(user)
	if err != nil {
		internalError(w, err)
		return
	}
	revalidatableJSON(w, r, body)
}

// listUsers is `GET /api/users?ids=1,2,3`: the users in the order asked, unknown ids skipped.
func (a *app) listUsers(w http.ResponseWriter, r *http.Request) {
	ids, perr := parseIDs(r.URL.Query().Get("ids"))
	if perr != nil {
		writeProblem(w, perr)
		return
	}
	found := make(map[int64]User, len(ids))
	if !a.signedIn(w, r, func(conn *pgxpool.Conn, reader int64) error {
		rows, err := conn.Query(r.Context(), selectUsers, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows, reader)
			if err != nil {
				return err
			}
			found[u.ID] = u
		}
		return rows.Err()
	}) {
		return
	}
	items := make([]User, 0, len(ids))
	for _, id := range ids {
		if u, ok := found[id]; ok {
			items = append(items, u)
		}
	}
	body, err := json.Marshal(struct {
		Items []User `json:"items"`
	}{items})
	if err != nil {
		internalError(w, err)
		return
	}
	revalidatableJSON(w, r, body)
}

// parseIDs reads `ids=1,2,3`: 1..=100 positive integers; duplicates are answered once.
func parseIDs(raw string) ([]int64, *problemError) {
	if raw == "" {
		return nil, invalidField("ids", "must list at least one id")
	}
	var ids []int64
	seen := make(map[int64]bool)
	for _, part := range strings.Split(raw, ",") {
		if len(ids) == maxBatchIDs {
			return nil, invalidField("ids", "must list at most 100 ids")
		}
		id, ok := positiveID(part)
		if !ok {
			return nil, invalidField("ids", "must be positive integers separated by commas")
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// revalidatableJSON answers 200 with `body` and a strong ETag (Cache-Control: private,
// no-cache), 304 when If-None-Match names it, gzip when the body is large enough and the client
// accepts it.
func revalidatableJSON(w http.ResponseWriter, r *http.Request, body []byte) {
	useGzip := len(body) >= minGzipBytes && acceptsGzip(r.Header.Get("Accept-Encoding"))
	sum := sha256.Sum256(body)
	hexTag := hex.EncodeToString(sum[:16])
	identityTag, gzipTag := `"`+hexTag+`"`, `"`+hexTag+`-gzip"`
	h := w.Header()
	h.Set("Vary", "accept-encoding")
	if useGzip {
		h.Set("ETag", gzipTag)
	} else {
		h.Set("ETag", identityTag)
	}
	h.Set("Cache-Control", "private, no-cache")
	if noneMatchHits(r.Header.Get("If-None-Match"), identityTag, gzipTag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	if useGzip {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(body)
		_ = zw.Close()
		h.Set("Content-Encoding", "gzip")
		body = buf.Bytes()
	}
	_, _ = w.Write(body)
}

// noneMatchHits is true when If-None-Match is `*` or lists one of `tags` (weak comparison: `W/`
// is ignored).
func noneMatchHits(value string, tags ...string) bool {
	if value == "" {
		return false
	}
	for _, c := range strings.Split(value, ",") {
		c = strings.TrimSpace(c)
		if c == "*" {
			return true
		}
		c = strings.TrimPrefix(c, "W/")
		for _, t := range tags {
			if c == t {
				return true
			}
		}
	}
	return false
}

// acceptsGzip is true when Accept-Encoding accepts gzip (or x-gzip) with q > 0, or does not list
// it and accepts `*` with q > 0.
func acceptsGzip(value string) bool {
	if value == "" {
		return false
	}
	gzipQ, starQ := -1.0, -1.0
	for _, item := range strings.Split(value, ",") {
		parts := strings.Split(item, ";")
		coding := strings.ToLower(strings.TrimSpace(parts[0]))
		q := 1.0
		for _, p := range parts[1:] {
			if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 32); err == nil {
					q = f
				}
				break
			}
		}
		switch coding {
		case "gzip", "x-gzip":
			gzipQ = q
		case "*":
			starQ = q
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
