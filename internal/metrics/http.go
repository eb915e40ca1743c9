package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Path is where Handler serves the metrics.
const Path = "/metrics"

// shutdownTimeout bounds how long Serve waits for scrapes in flight once its
// context is done; then it closes their connections.
const shutdownTimeout = time.Second

// Handler returns a handler that serves WriteText at GET (and HEAD) /metrics,
// 405 Method Not Allowed for other methods there and 404 for other paths.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != Path {
			http.NotFound(w, req)
			return
		}
		// HEAD is allowed with GET, as net/http's own mux does: net/http
		// drops the body and keeps the headers.
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil { // a bytes.Buffer does not fail
			http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Content-Length", strconv.Itoa(b.Len()))
		w.WriteHeader(http.StatusOK)
		w.Write(b.Bytes()) // an error here is the scraper's: it went away
	})
}

// Serve listens on addr ("127.0.0.1:9101", ":0", ...) and serves r.Handler
// in the background until ctx is done; then it shuts the server down,
// closing connections still open after one second. It returns the bound
// address, which tells the port when addr asks for port 0. A listen error
// is returned, saying what to change in --metrics; later serve errors are
// logged.
func Serve(ctx context.Context, addr string, r *Registry, log zerolog.Logger) (net.Addr, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          stdlog.New(log, "metrics: ", 0),
	}
	go func() {
		// After Shutdown, Serve returns ErrServerClosed, and it closes ln
		// itself should Shutdown come first.
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Stringer("addr", ln.Addr()).Msg("metrics: serve")
		}
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	})
	log.Info().Stringer("addr", ln.Addr()).Msg("metrics: serving " + Path)
	return ln.Addr(), nil
}

// listenError explains a failed listen on addr and what to do about it.
func listenError(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("metrics: listen on %s: %w (another program has this port; choose another --metrics address, e.g. %s, or port 0 for any free port)",
			addr, syscall.EADDRINUSE, nextPort(addr))
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("metrics: listen on %s: %w (ports below 1024 need CAP_NET_BIND_SERVICE; choose a --metrics port above 1023, e.g. 127.0.0.1:9101)",
			addr, syscall.EACCES)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("metrics: listen on %s: %w (no interface of this host has that address; use 127.0.0.1 or one of its own addresses in --metrics)",
			addr, syscall.EADDRNOTAVAIL)
	}
	var ae *net.AddrError
	var de *net.DNSError
	if errors.As(err, &ae) || errors.As(err, &de) {
		return fmt.Errorf("metrics: listen on %q: %w (--metrics wants host:port, e.g. 127.0.0.1:9101 or :0)", addr, err)
	}
	return fmt.Errorf("metrics: listen on %s: %w", addr, err)
}

// nextPort returns addr with the port after its own, as a suggestion.
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:9101"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p >= 65535 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.FormatUint(p+1, 10))
}
