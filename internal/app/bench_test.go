package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Ingest benchmarks: a signed webhook through real HTTP into the embedded
// JetStream server (file storage), answered after the stream's ack; next to
// it, the raw synchronous publish rate on the same machine.
//
//	go test ./internal/app -run '^$' -bench . -benchmem -benchtime 5000x

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func BenchmarkRawJetStreamPublish(b *testing.B) {
	ns, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 600) // about the size of a stored run event
	for i := range warmUp {
		msg := &nats.Msg{Subject: "tfe.run.acme.ws-bench.applied", Data: data}
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(fmt.Sprint("warm-", i))); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		msg := &nats.Msg{Subject: "tfe.run.acme.ws-bench.applied", Data: data}
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(fmt.Sprint("raw-", i))); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func benchDaemon(b *testing.B) *app.App {
	a, err := app.New(app.Config{
		HTTPListen: "127.0.0.1:0", DataDir: b.TempDir(),
		NATS:    app.NATSConfig{EmbeddedListen: "off"},
		Webhook: events.WebhookOptions{Tokens: []string{webhookToken}},
	}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	s, err := dialLean(a.HTTPAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer s.conn.Close()
	for i := range warmUp {
		body := benchPayload("warm", i)
		if err := s.roundTrip(leanRequest(a.HTTPAddr(), body)); err != nil {
			b.Fatal(err)
		}
	}
	return a
}

// warmUp is how many events each benchmark stores before its timer starts,
// so that none pays alone for a cold process, stream or connection (the
// first benchmark in a process measured about 20% slower without).
const warmUp = 1000

// benchPayload is the i-th distinct applied-run payload of a series; series
// differ in their run IDs, so none is a duplicate of another's.
func benchPayload(series string, i int) []byte {
	return runPayload(fmt.Sprintf("%s-%016d", series, i), "applied", time.Unix(int64(i), 0).UTC())
}

// leanRequest is a signed webhook request as bytes on the wire.
func leanRequest(addr string, body []byte) []byte {
	return fmt.Appendf(nil, "POST /webhooks/tfe HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %s\r\nContent-Length: %d\r\n\r\n%s",
		addr, events.SignatureHeader, tfesim.Sign(webhookToken, body), len(body), body)
}

func signed(url string, i int) *http.Request {
	body := benchPayload("run", i)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, tfesim.Sign(webhookToken, body))
	return req
}

func post(b *testing.B, client *http.Client, req *http.Request) {
	res, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body) // read to the end so the connection is reused
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Errorf("status %d", res.StatusCode)
	}
}

// BenchmarkIngest sends webhooks one after another: its ns/op is the
// closed-loop cost of one signed webhook to JetStream ack.
func BenchmarkIngest(b *testing.B) {
	a := benchDaemon(b)
	url := "http://" + a.HTTPAddr() + "/webhooks/tfe"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := signed(url, i)
		start := time.Now()
		post(b, client, req)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkIngestAt1000PerSecond sends webhooks at a fixed 1,000 requests
// per second, open loop, and reports the latency each one saw.
func BenchmarkIngestAt1000PerSecond(b *testing.B) {
	a := benchDaemon(b)
	url := "http://" + a.HTTPAddr() + "/webhooks/tfe"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = signed(url, i)
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d) // pacing the load generator, not waiting for a result
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			post(b, client, reqs[i])
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkIngestParallel sends webhooks from 8 concurrent senders per
// core, as TFE does from its many workers: its ns/op gives throughput. The
// requests are made and signed before the timer starts, as the raw publish
// benchmark's data is, and sent by a minimal HTTP/1.1 client (see
// leanSender) so that the load generator, which shares the cores with the
// daemon, takes as little of them as wrk would.
func BenchmarkIngestParallel(b *testing.B) {
	a := benchDaemon(b)
	reqs := make([][]byte, b.N)
	for i := range reqs {
		reqs[i] = leanRequest(a.HTTPAddr(), benchPayload("run", i))
	}
	var next atomic.Int64
	lat := make([]time.Duration, b.N) // each request's slot is written by one sender
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s, err := dialLean(a.HTTPAddr())
		if err != nil {
			b.Error(err)
			return
		}
		defer s.conn.Close()
		for pb.Next() {
			i := next.Add(1) - 1
			start := time.Now()
			if err := s.roundTrip(reqs[i]); err != nil {
				b.Error(err)
				return
			}
			lat[i] = time.Since(start)
		}
	})
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkIngestParallelHTTPClient is BenchmarkIngestParallel with
// net/http's client as the load generator: the same work on the daemon's
// side, with a heavier client sharing the cores.
func BenchmarkIngestParallelHTTPClient(b *testing.B) {
	a := benchDaemon(b)
	url := "http://" + a.HTTPAddr() + "/webhooks/tfe"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	bodies := make([][]byte, b.N)
	sigs := make([]string, b.N)
	for i := range bodies {
		bodies[i] = benchPayload("run", i)
		sigs[i] = tfesim.Sign(webhookToken, bodies[i])
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req, _ := http.NewRequest("POST", url, bytes.NewReader(bodies[i]))
			req.Header.Set(events.SignatureHeader, sigs[i])
			post(b, client, req)
		}
	})
}

// leanSender is a keep-alive HTTP/1.1 connection that writes prepared
// requests and reads each response's status line, headers and body: what
// a load generator such as wrk does, and nothing more.
type leanSender struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialLean(addr string) (*leanSender, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &leanSender{conn: conn, r: bufio.NewReader(conn)}, nil
}

// roundTrip sends one request and fails unless the answer is 200.
func (s *leanSender) roundTrip(req []byte) error {
	if _, err := s.conn.Write(req); err != nil {
		return err
	}
	status, err := s.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("response %q", bytes.TrimSpace(status))
	}
	length := -1
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(name), "Content-Length") {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return fmt.Errorf("content length %q", value)
			}
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	_, err = s.r.Discard(length)
	return err
}
