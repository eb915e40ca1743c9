package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/pkg/stack"
)

// counters returns a Source that reports cs, alternating names and values:
// counters("replied", 3, "rx_packets", 4).
func counters(t *testing.T, kv ...any) Source {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("counters(%v): odd number of arguments", kv)
	}
	var cs []stack.Counter
	for i := 0; i < len(kv); i += 2 {
		name, ok1 := kv[i].(string)
		value, ok2 := kv[i+1].(int)
		if !ok1 || !ok2 {
			t.Fatalf("counters(%v): want string, int pairs", kv)
		}
		cs = append(cs, stack.Counter{Name: name, Value: uint64(value)})
	}
	return func() []stack.Counter { return cs }
}

// src is one Add call.
type src struct {
	help string
	src  Source
}

func newRegistry(t *testing.T, prefix string, srcs ...src) *Registry {
	t.Helper()
	r := New(prefix)
	for _, s := range srcs {
		r.Add(s.help, s.src)
	}
	return r
}

func writeText(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	return b.String()
}

func TestWriteTextGolden(t *testing.T) {
	r := newRegistry(t, "vhost",
		src{"Packets and frames by what the stack did with them.", counters(t, "replied", 120, "not_for_us", 1, "bad_ip_checksum", 0)},
		src{"Device loop counters.", counters(t, "rx_packets", 121, "tx_errors", 0)},
	)
	const want = `# HELP vhost_bad_ip_checksum_total Packets and frames by what the stack did with them.
# TYPE vhost_bad_ip_checksum_total counter
vhost_bad_ip_checksum_total 0
# HELP vhost_not_for_us_total Packets and frames by what the stack did with them.
# TYPE vhost_not_for_us_total counter
vhost_not_for_us_total 1
# HELP vhost_replied_total Packets and frames by what the stack did with them.
# TYPE vhost_replied_total counter
vhost_replied_total 120
# HELP vhost_rx_packets_total Device loop counters.
# TYPE vhost_rx_packets_total counter
vhost_rx_packets_total 121
# HELP vhost_tx_errors_total Device loop counters.
# TYPE vhost_tx_errors_total counter
vhost_tx_errors_total 0
`
	if got := writeText(t, r); got != want {
		t.Errorf("WriteText() =\n%s\nwant\n%s", got, want)
	}
}

// metric is one metric as WriteText writes it.
type metric struct {
	name, help, value string
}

// parseText reads WriteText's output back, checking that each metric is its
// three lines in order.
func parseText(t *testing.T, text string) []metric {
	t.Helper()
	if text == "" {
		return nil
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("text does not end with a newline: %q", text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines)%3 != 0 {
		t.Fatalf("%d lines, want three per metric:\n%s", len(lines), text)
	}
	var out []metric
	for i := 0; i < len(lines); i += 3 {
		help, ok := strings.CutPrefix(lines[i], "# HELP ")
		if !ok {
			t.Fatalf("line %d = %q, want # HELP", i+1, lines[i])
		}
		name, help, _ := strings.Cut(help, " ")
		if typ := "# TYPE " + name + " counter"; lines[i+1] != typ {
			t.Fatalf("line %d = %q, want %q", i+2, lines[i+1], typ)
		}
		value, ok := strings.CutPrefix(lines[i+2], name+" ")
		if !ok {
			t.Fatalf("line %d = %q, want %q and a value", i+3, lines[i+2], name)
		}
		out = append(out, metric{name, help, value})
	}
	return out
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		srcs   []src
		want   []metric
	}{
		{
			name:   "no sources",
			prefix: "vhost",
		},
		{
			name:   "sorted by name, not by source order",
			prefix: "vhost",
			srcs: []src{
				{"a", counters(t, "tx_packets", 3, "replied", 2)},
				{"b", counters(t, "frames_in", 1, "drop_too_large", 4)},
			},
			want: []metric{
				{"vhost_drop_too_large_total", "b", "4"},
				{"vhost_frames_in_total", "b", "1"},
				{"vhost_replied_total", "a", "2"},
				{"vhost_tx_packets_total", "a", "3"},
			},
		},
		{
			name:   "duplicate across sources summed, first help kept",
			prefix: "vhost",
			srcs: []src{
				{"relay one", counters(t, "frames_in", 5, "tx_errors", 1)},
				{"relay two", counters(t, "frames_in", 7)},
				{"relay three", counters(t, "tx_errors", 2, "frames_in", 0)},
			},
			want: []metric{
				{"vhost_frames_in_total", "relay one", "12"},
				{"vhost_tx_errors_total", "relay one", "3"},
			},
		},
		{
			name:   "largest value",
			prefix: "vhost",
			srcs:   []src{{"h", func() []stack.Counter { return []stack.Counter{{Name: "big", Value: 1<<64 - 1}} }}},
			want:   []metric{{"vhost_big_total", "h", "18446744073709551615"}},
		},
		{
			name:   "invalid characters become underscores",
			prefix: "vhost",
			srcs:   []src{{"h", counters(t, "drop-too large", 1, "rx.packets/s", 2, "é", 3, "ns:rx", 4)}},
			want: []metric{
				{"vhost___total", "h", "3"}, // é is one character
				{"vhost_drop_too_large_total", "h", "1"},
				{"vhost_ns:rx_total", "h", "4"},
				{"vhost_rx_packets_s_total", "h", "2"},
			},
		},
		{
			name:   "names equal once sanitised are summed",
			prefix: "vhost",
			srcs:   []src{{"h", counters(t, "rx-packets", 1, "rx_packets", 2, "rx packets", 4)}},
			want:   []metric{{"vhost_rx_packets_total", "h", "7"}},
		},
		{
			name:   "prefix sanitised",
			prefix: "v-host",
			srcs:   []src{{"h", counters(t, "replied", 1)}},
			want:   []metric{{"v_host_replied_total", "h", "1"}},
		},
		{
			name:   "no prefix",
			prefix: "",
			srcs:   []src{{"h", counters(t, "replied", 1, "", 2)}},
			want: []metric{
				{"__total", "h", "2"},
				{"replied_total", "h", "1"},
			},
		},
		{
			name:   "leading digit",
			prefix: "",
			srcs:   []src{{"h", counters(t, "4xx", 1)}},
			want:   []metric{{"_4xx_total", "h", "1"}},
		},
		{
			name:   "leading digit in prefix",
			prefix: "9p",
			srcs:   []src{{"h", counters(t, "x", 1)}},
			want:   []metric{{"_9p_x_total", "h", "1"}},
		},
		{
			name:   "help escaped",
			prefix: "vhost",
			srcs:   []src{{"two\nlines with a \\ backslash", counters(t, "x", 1)}},
			want:   []metric{{"vhost_x_total", `two\nlines with a \\ backslash`, "1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, tt.prefix, tt.srcs...)
			text := writeText(t, r)
			got := parseText(t, text)
			if len(got) != len(tt.want) {
				t.Fatalf("WriteText() wrote %d metrics, want %d:\n%s", len(got), len(tt.want), text)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("WriteText() metric %d = %+v, want %+v", i, got[i], tt.want[i])
				}
				if !validName(got[i].name) {
					t.Errorf("WriteText() metric name %q is not a valid Prometheus name", got[i].name)
				}
			}
			// Stable: the same registry writes the same text again.
			if again := writeText(t, r); again != text {
				t.Errorf("WriteText() second call =\n%s\nfirst\n%s", again, text)
			}
		})
	}
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriteTextError(t *testing.T) {
	r := newRegistry(t, "vhost", src{"h", counters(t, "x", 1)})
	if err := r.WriteText(errWriter{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("WriteText(failing writer) = %v, want %v", err, io.ErrClosedPipe)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		srcs []src
		want string
	}{
		{name: "no sources", want: ""},
		{name: "all zero", srcs: []src{{"h", counters(t, "replied", 0, "rx_packets", 0)}}, want: ""},
		{
			name: "source order, zeros left out",
			srcs: []src{
				{"stack", counters(t, "replied", 120, "fragment_queued", 0, "not_for_us", 1)},
				{"loop", counters(t, "rx_packets", 121, "tx_errors", 0)},
			},
			want: "replied=120 not_for_us=1 rx_packets=121",
		},
		{
			name: "duplicates summed at their first place",
			srcs: []src{
				{"a", counters(t, "frames_in", 1, "tx_errors", 0)},
				{"b", counters(t, "tx_errors", 2, "frames_in", 3)},
			},
			want: "frames_in=4 tx_errors=2",
		},
		{name: "sanitised names", srcs: []src{{"h", counters(t, "drop too-large", 5)}}, want: "drop_too_large=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, "vhost", tt.srcs...)
			if got := Summary(r); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	r := newRegistry(t, "vhost", src{"h", counters(t, "replied", 7)})
	tests := []struct {
		method, target string
		wantStatus     int
		wantType       string // "" means do not check
		wantBody       string // a substring; "" means do not check
		wantAllow      string
	}{
		{http.MethodGet, "/metrics", http.StatusOK, ContentType, "vhost_replied_total 7\n", ""},
		{http.MethodGet, "/metrics?x=1", http.StatusOK, ContentType, "vhost_replied_total 7\n", ""},
		{http.MethodHead, "/metrics", http.StatusOK, ContentType, "", ""},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "", "", "GET, HEAD"},
		{http.MethodPut, "/metrics", http.StatusMethodNotAllowed, "", "", "GET, HEAD"},
		{http.MethodDelete, "/metrics", http.StatusMethodNotAllowed, "", "", "GET, HEAD"},
		{http.MethodGet, "/", http.StatusNotFound, "", "", ""},
		{http.MethodGet, "/metrics/", http.StatusNotFound, "", "", ""},
		{http.MethodGet, "/metricsx", http.StatusNotFound, "", "", ""},
		{http.MethodPost, "/other", http.StatusNotFound, "", "", ""},
	}
	h := r.Handler()
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s: status = %d, want %d", tt.method, tt.target, rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); tt.wantType != "" && got != tt.wantType {
				t.Errorf("%s %s: Content-Type = %q, want %q", tt.method, tt.target, got, tt.wantType)
			}
			if got := rec.Body.String(); tt.wantBody != "" && !strings.Contains(got, tt.wantBody) {
				t.Errorf("%s %s: body = %q, want it to contain %q", tt.method, tt.target, got, tt.wantBody)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.target, got, tt.wantAllow)
			}
		})
	}
}

func get(t *testing.T, url string) (status int, contentType, body string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestServe(t *testing.T) {
	var replied atomic.Uint64
	r := New("vhost")
	r.Add("Packets by verdict.", func() []stack.Counter {
		return []stack.Counter{{Name: "replied", Value: replied.Load()}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", r, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("Serve(127.0.0.1:0): %v", err)
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.Port == 0 || !tcp.IP.IsLoopback() {
		t.Fatalf("Serve(127.0.0.1:0) address = %v, want a loopback address with a port", addr)
	}
	url := "http://" + addr.String() + Path

	for _, n := range []uint64{0, 42} {
		replied.Store(n)
		status, ctype, body := get(t, url)
		if status != http.StatusOK || ctype != ContentType {
			t.Fatalf("GET %s: status %d, Content-Type %q; want 200, %q", url, status, ctype, ContentType)
		}
		want := "# HELP vhost_replied_total Packets by verdict.\n# TYPE vhost_replied_total counter\nvhost_replied_total " +
			strconv.FormatUint(n, 10) + "\n"
		if body != want {
			t.Errorf("GET %s: body = %q, want %q", url, body, want)
		}
	}
	if status, _, _ := get(t, "http://"+addr.String()+"/"); status != http.StatusNotFound {
		t.Errorf("GET /: status %d, want 404", status)
	}

	cancel()
	waitClosed(t, addr.String())
}

// waitClosed waits until nothing accepts connections on addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * shutdownTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections %v after cancel", addr, 2*shutdownTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeShutsDownWithScrapeOpen(t *testing.T) {
	r := newRegistry(t, "vhost", src{"h", counters(t, "x", 1)})
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := Serve(ctx, "127.0.0.1:0", r, zerolog.Nop())
	if err != nil {
		t.Fatalf("Serve(127.0.0.1:0): %v", err)
	}
	// A client that sends half a request holds its connection active:
	// Shutdown must give up on it after shutdownTimeout and close it.
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatalf("write half a request: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // let the server start reading it
	start := time.Now()
	cancel()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read from the half-open scrape: %v, want EOF once the server closes it", err)
	}
	if d := time.Since(start); d > shutdownTimeout+time.Second {
		t.Errorf("the server closed the open scrape after %v, want about %v", d, shutdownTimeout)
	}
	waitClosed(t, addr.String())
}

func TestServeListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen 127.0.0.1:0: %v", err)
	}
	defer busy.Close()

	tests := []struct {
		name      string
		addr      string
		wantIs    error    // nil means do not check
		wantInErr []string // substrings of the message
	}{
		{"address in use", busy.Addr().String(), syscall.EADDRINUSE, []string{busy.Addr().String(), "already in use", "another --metrics address"}},
		{"no port", "127.0.0.1", nil, []string{`"127.0.0.1"`, "--metrics wants host:port"}},
		{"bad port", "127.0.0.1:http-ish", nil, []string{"--metrics wants host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr, err := Serve(ctx, tt.addr, New("vhost"), zerolog.Nop())
			if err == nil {
				t.Fatalf("Serve(%s) = %v, nil; want an error", tt.addr, addr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Serve(%s) error %q is not %v", tt.addr, err, tt.wantIs)
			}
			for _, s := range tt.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Serve(%s) error %q does not say %q", tt.addr, err, s)
				}
			}
			if !strings.HasPrefix(err.Error(), "metrics: listen on ") {
				t.Errorf("Serve(%s) error %q, want it to start with %q", tt.addr, err, "metrics: listen on ")
			}
		})
	}
}

func TestNextPort(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"127.0.0.1:9101", "127.0.0.1:9102"},
		{":9101", ":9102"},
		{"[::1]:9101", "[::1]:9102"},
		{"127.0.0.1:65535", "127.0.0.1:0"},
		{"nonsense", "127.0.0.1:9101"},
	}
	for _, tt := range tests {
		if got := nextPort(tt.addr); got != tt.want {
			t.Errorf("nextPort(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// lineWriter sends each write (one zerolog event) on a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// nextLine returns the next log line, failing after timeout.
func nextLine(t *testing.T, lines lineWriter, timeout time.Duration) string {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(timeout):
		t.Fatalf("no log line within %v", timeout)
		return ""
	}
}

func TestRunSummary(t *testing.T) {
	const every = 5 * time.Millisecond
	var replied, rx atomic.Uint64
	r := New("vhost")
	r.Add("h", func() []stack.Counter {
		return []stack.Counter{{Name: "replied", Value: replied.Load()}, {Name: "rx_packets", Value: rx.Load()}}
	})
	lines := make(lineWriter, 100)
	log := zerolog.New(io.MultiWriter(lines, zerolog.NewTestWriter(t)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunSummary(ctx, every, r, log)
	}()
	defer func() { cancel(); <-done }()

	// All zero: nothing to say.
	time.Sleep(10 * every)
	if len(lines) != 0 {
		t.Fatalf("RunSummary logged %q with every counter zero, want nothing", <-lines)
	}

	replied.Store(3)
	rx.Store(4)
	checkLine(t, nextLine(t, lines, time.Second), "replied=3 rx_packets=4")

	// Unchanged: no new line.
	time.Sleep(10 * every)
	if len(lines) != 0 {
		t.Fatalf("RunSummary logged %q with nothing changed, want nothing", <-lines)
	}

	rx.Store(5)
	checkLine(t, nextLine(t, lines, time.Second), "replied=3 rx_packets=5")

	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("RunSummary did not return within 1s of cancel")
	}
	rx.Store(6)
	time.Sleep(5 * every)
	if len(lines) != 0 {
		t.Errorf("RunSummary logged %q after cancel", <-lines)
	}
}

// checkLine checks that line is an info event whose message is want.
func checkLine(t *testing.T, line, want string) {
	t.Helper()
	wantLine := `{"level":"info","message":"` + want + `"}` + "\n"
	if line != wantLine {
		t.Errorf("RunSummary logged %q, want %q", line, wantLine)
	}
}

func TestRunSummaryOff(t *testing.T) {
	r := newRegistry(t, "vhost", src{"h", counters(t, "x", 1)})
	var b bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunSummary(context.Background(), 0, r, zerolog.New(&b))
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("RunSummary(every=0) did not return at once")
	}
	if b.Len() != 0 {
		t.Errorf("RunSummary(every=0) logged %q", b.String())
	}
}

func TestWriteTextLabeled(t *testing.T) {
	r := New("vhost")
	r.Add("Packets by verdict.", counters(t, "replied", 3))
	hosts := func(kv ...any) LabeledSource {
		var ls []Labeled
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, Labeled{kv[i].(string), uint64(kv[i+1].(int))})
		}
		return func() []Labeled { return ls }
	}
	r.AddLabeled("host_replies", "Replies by host.", "host", hosts("web", 2, `we"ird\`, 1))
	// Another source without fixed labels: same family, "web" summed.
	r.AddLabeled("host_replies", "ignored", "host", hosts("web", 5, "db", 0))
	// A device's hosts: the dev label sets them apart.
	r.AddLabeled("host_replies", "ignored", "host", hosts("web", 4), Label{"dev", "vhost1"})
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP vhost_replied_total Packets by verdict.
# TYPE vhost_replied_total counter
vhost_replied_total 3
# HELP vhost_host_replies_total Replies by host.
# TYPE vhost_host_replies_total counter
vhost_host_replies_total{dev="vhost1",host="web"} 4
vhost_host_replies_total{host="db"} 0
vhost_host_replies_total{host="we\"ird\\"} 1
vhost_host_replies_total{host="web"} 7
`
	if b.String() != want {
		t.Errorf("WriteText:\n%s\nwant:\n%s", b.String(), want)
	}
	if s := Summary(r); s != "replied=3" {
		t.Errorf("Summary = %q, want the unlabelled counters only", s)
	}
}
