// Package natsembed runs a NATS server with JetStream inside the process,
// for the daemon's default configuration and for tests.
//
// The server stores JetStream data under the directory it is given, so a
// restart with the same directory finds every stream and message it had.
// It installs no signal handlers: the process owns its signals.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Options configure an embedded server.
type Options struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// Listen is the host:port for outside clients (the nats CLI, other
	// replicas). Empty or "off" means in-process connections only; port 0
	// picks a free port.
	Listen string
	// Logger receives the server's log at debug level; nil discards it.
	Logger *zap.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("embedded NATS: a store directory is required")
	}
	so := &server.Options{
		ServerName: "orchestrator-embedded",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      opts.Logger == nil,
	}
	if opts.Listen == "" || opts.Listen == "off" {
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
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if opts.Logger != nil {
		ns.SetLoggerV2(zapLogger{opts.Logger.Sugar()}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not become ready in 30s (is the listen address in use?)")
	}
	return &Server{ns: ns}, nil
}

// Connect opens an in-process connection.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
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

// zapLogger adapts zap to the server's logger; the server's own chatter goes
// to debug, its warnings and errors keep their level.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Noticef(format string, v ...any) { l.s.Debugf(format, v...) }
func (l zapLogger) Warnf(format string, v ...any)   { l.s.Warnf(format, v...) }
func (l zapLogger) Fatalf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l zapLogger) Errorf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l zapLogger) Debugf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l zapLogger) Tracef(format string, v ...any)  {}
