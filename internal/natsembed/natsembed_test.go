package natsembed_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
)

func seedFile(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats-user.nk")
	seed, created, err := natsembed.LoadOrCreateSeed(path)
	if err != nil || !created {
		t.Fatalf("create a seed: created %v, %v", created, err)
	}
	return path, seed
}

// A listening server admits the user of its seed and nobody else.
func TestListeningServerAdmitsOnlyItsUser(t *testing.T) {
	path, seed := seedFile(t)
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)

	if nc, err := nats.Connect(ns.ClientURL()); err == nil {
		nc.Close()
		t.Error("an anonymous client connected")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("an anonymous client: got %v, want an authorization violation", err)
	}
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	if nc, err := nats.Connect(ns.ClientURL(), nats.Nkey(otherPub, other.Sign)); err == nil {
		nc.Close()
		t.Error("a client with another NKey connected")
	}
	// What the nats CLI does with --nkey.
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL(), opt)
	if err != nil {
		t.Fatalf("the seed's user: %v", err)
	}
	nc.Close()
	in, err := ns.Connect()
	if err != nil {
		t.Fatalf("in process: %v", err)
	}
	in.Close()
}

func TestListeningServerNeedsASeed(t *testing.T) {
	if ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}); err == nil {
		ns.Shutdown()
		t.Fatal("a server listened without a user seed")
	}
	if _, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Seed: []byte("SUnot-a-seed")}); err == nil || strings.Contains(err.Error(), "SUnot") {
		t.Fatalf("a bad seed: got %v, want an error that does not show it", err)
	}
}

// A server that cannot start says why at once, not after the start timeout.
func TestStartReportsTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, seed := seedFile(t)
	start := time.Now()
	_, err = natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: ln.Addr().String(), Seed: seed, StartTimeout: 20 * time.Second})
	if err == nil {
		t.Fatal("started on an address in use")
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("got %q, want the address and that it is in use", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the failure took %s to report", took)
	}
}

func TestLoadOrCreateSeed(t *testing.T) {
	path, seed := seedFile(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the seed file's mode is %04o, want 0600", st.Mode().Perm())
	}
	again, created, err := natsembed.LoadOrCreateSeed(path)
	if err != nil || created || string(again) != string(seed) {
		t.Errorf("second load: created %v, same %v, %v; want the same seed, not created", created, string(again) == string(seed), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := natsembed.LoadOrCreateSeed(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a seed others may read: got %v, want refused", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.nk")
	if err := os.WriteFile(bad, []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := natsembed.LoadOrCreateSeed(bad); err == nil || !strings.Contains(err.Error(), "not an NKey") {
		t.Errorf("a file that is not a seed: got %v", err)
	}
	if _, _, err := natsembed.LoadOrCreateSeed(filepath.Join(t.TempDir(), "missing", "x.nk")); err == nil {
		t.Error("created a seed in a directory that does not exist")
	}
}
