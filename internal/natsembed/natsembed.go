// Package natsembed runs a NATS server with JetStream inside the process,
// for the daemon's default configuration and for tests.
//
// The server stores JetStream data under the directory it is given, so a
// restart with the same directory finds every stream and message it had.
// It installs no signal handlers: the process owns its signals.
//
// A server that listens admits one user, identified by an NKey: only a
// client that signs with the user's seed connects, in the process
// (Connect) or over the network (the nats CLI's --nkey). A server without
// a listener may run without one, for tests: nothing outside the process
// can reach it.
package natsembed

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure an embedded server.
type Options struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// Listen is the host:port for outside clients (the nats CLI, other
	// replicas). Empty or "off" means in-process connections only; port 0
	// picks a free port.
	Listen string
	// Seed is the NKey user seed (SU...) of the one user the server admits;
	// Connect signs with it. Required with a listener: a server that listens
	// never admits anonymous clients. See LoadOrCreateSeed.
	Seed []byte
	// StartTimeout bounds the wait for the server to accept connections;
	// default 30s. A failure the server reports (the listen address in use,
	// a store it cannot open) ends the wait at once.
	StartTimeout time.Duration
	// Logger receives the server's log, its notices at debug level; nil
	// discards it.
	Logger *zap.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns   *server.Server
	user nkeys.KeyPair // nil: no authentication
}

// Start starts the server and waits until it accepts connections. When the
// server fails to start, the error is the server's own account of why.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("embedded NATS: a store directory is required")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	so := &server.Options{
		ServerName: "orchestrator-embedded",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      true, // the server logs through SetLoggerV2 below
	}
	listen := opts.Listen != "" && opts.Listen != "off"
	if !listen {
		so.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen address %q: %w", opts.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("embedded NATS listen address %q: bad port", opts.Listen)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		so.Host, so.Port = host, port
	}
	s := &Server{}
	switch {
	case len(opts.Seed) > 0:
		kp, pub, err := userKey(opts.Seed)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		s.user = kp
		so.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	case listen:
		return nil, errors.New("embedded NATS: a server that listens needs a user seed; it never admits anonymous clients")
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	log := &serverLog{fatal: make(chan string, 1)}
	if opts.Logger != nil {
		log.s = opts.Logger.Sugar()
	}
	ns.SetLoggerV2(log, false, false, false)
	go ns.Start()
	deadline := time.Now().Add(opts.StartTimeout)
	for {
		select {
		case msg := <-log.fatal:
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("embedded NATS: %s", msg)
		default:
		}
		if ns.ReadyForConnections(100 * time.Millisecond) {
			log.started.Store(true)
			s.ns = ns
			return s, nil
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("embedded NATS did not become ready in %s", opts.StartTimeout)
		}
	}
}

// userKey reads an NKey user seed.
func userKey(seed []byte) (nkeys.KeyPair, string, error) {
	kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		return nil, "", errors.New("the user seed is not an NKey seed")
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, "", errors.New("the seed is not an NKey user seed (SU...)")
	}
	return kp, pub, nil
}

// Connect opens an in-process connection, signed with the user's seed
// when the server has one.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if s.user != nil {
		pub, _ := s.user.PublicKey()
		opts = append(opts, nats.Nkey(pub, s.user.Sign))
	}
	return nats.Connect("", append(opts, nats.InProcessServer(s.ns))...)
}

// ClientURL is the URL outside clients connect to, or "" without a listener.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has flushed its store.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// LoadOrCreateSeed returns the NKey user seed kept in path, creating it
// (readable by its owner only) when there is none. A seed file that others
// may read is refused: whoever reads it can do anything on the server.
func LoadOrCreateSeed(path string) (seed []byte, created bool, err error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		seed, err := createSeed(path)
		return seed, err == nil, err
	case err != nil:
		return nil, false, fmt.Errorf("read NATS user seed: %w", err)
	case st.Mode().Perm()&0o077 != 0:
		return nil, false, fmt.Errorf("NATS user seed %s may be read by others (mode %04o): make it readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	seed, err = os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read NATS user seed: %w", err)
	}
	seed = bytes.TrimSpace(seed)
	if _, _, err := userKey(seed); err != nil {
		return nil, false, fmt.Errorf("NATS user seed %s: %w", path, err)
	}
	return seed, false, nil
}

// createSeed writes a new user seed to path, which must not exist; on any
// failure no file is left behind.
func createSeed(path string) ([]byte, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("create NATS user seed: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("create NATS user seed: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create NATS user seed: %w", err)
	}
	_, err = f.Write(append(seed, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write NATS user seed: %w", err)
	}
	return seed, nil
}

// serverLog adapts zap to the server's logger: the server's own chatter
// goes to debug, its warnings and errors keep their level. A fatal report
// while Start waits (the server gives up starting) is handed to Start, which
// returns it as its error, rather than logged.
type serverLog struct {
	s       *zap.SugaredLogger // nil: discard
	started atomic.Bool
	once    sync.Once
	fatal   chan string
}

func (l *serverLog) Noticef(format string, v ...any) { l.log(zap.DebugLevel, format, v) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log(zap.WarnLevel, format, v) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log(zap.ErrorLevel, format, v) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log(zap.DebugLevel, format, v) }
func (l *serverLog) Tracef(format string, v ...any)  {}

func (l *serverLog) Fatalf(format string, v ...any) {
	if l.started.Load() {
		l.log(zap.ErrorLevel, format, v)
		return
	}
	l.once.Do(func() { l.fatal <- fmt.Sprintf(format, v...) })
}

func (l *serverLog) log(level zapcore.Level, format string, v []any) {
	if l.s != nil {
		l.s.Logf(level, format, v...)
	}
}
