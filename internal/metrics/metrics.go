// Package metrics exposes vhost's counters in the Prometheus text exposition
// format (version 0.0.4) and as a one-line human summary.
//
// The format is a few lines of text per counter, so it is written here rather
// than with the Prometheus client library: vhost takes no module for it.
package metrics

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vhost-dev/vhost/pkg/stack"
)

// Source returns a snapshot of counters, such as (*stack.Stack).Counters.
// A Source may be called from several goroutines at once and must be safe
// for that; reading atomics, as the stack does, is.
type Source func() []stack.Counter

// Registry gathers the counters of several sources. It is safe for
// concurrent use.
type Registry struct {
	prefix string // sanitised, with its trailing '_'; or empty

	mu       sync.Mutex
	sources  []source
	families []family
}

type source struct {
	help string
	get  Source
}

// New returns an empty registry whose metric names are
// <prefix>_<counter name>_total, e.g. prefix "vhost" and counter "replied"
// give vhost_replied_total. An empty prefix gives <counter name>_total.
func New(prefix string) *Registry {
	if prefix != "" {
		prefix = sanitize(prefix) + "_"
	}
	return &Registry{prefix: prefix}
}

// Add adds a source; help is the HELP text of each of its counters. Each
// counter of src becomes one metric. A name that several sources report
// (or that several counters give once sanitised) is one metric whose value
// is their sum, with the help text of the first source that reported it.
func (r *Registry) Add(help string, src Source) {
	if src == nil {
		panic("metrics: Add with a nil Source")
	}
	r.mu.Lock()
	r.sources = append(r.sources, source{help, src})
	r.mu.Unlock()
}

// sample is one metric: a sanitised counter name, without prefix or suffix.
type sample struct {
	name  string
	help  string
	value uint64
}

// gather calls every source and merges counters of the same sanitised name,
// in the order in which they first appear: the order of Add, then the
// order of each source's counters.
func (r *Registry) gather() []sample {
	r.mu.Lock()
	srcs := slices.Clone(r.sources)
	r.mu.Unlock()

	var out []sample
	index := make(map[string]int)
	// Sources are called without the lock held: a slow source must not
	// stall Add.
	for _, s := range srcs {
		for _, c := range s.get() {
			name := sanitize(c.Name)
			if i, ok := index[name]; ok {
				out[i].value += c.Value
				continue
			}
			index[name] = len(out)
			out = append(out, sample{name, s.help, c.Value})
		}
	}
	return out
}

// metricName returns the exposition name of counter name (already
// sanitised). A name that would start with a digit gets a leading
// underscore: a metric name may not start with one.
func (r *Registry) metricName(name string) string {
	full := r.prefix + name + "_total"
	if isDigit(full[0]) {
		return "_" + full
	}
	return full
}

// WriteText writes every metric in the Prometheus text exposition format
// 0.0.4, sorted by name, then the labelled families (AddLabeled):
//
//	# HELP vhost_replied_total Packets by verdict.
//	# TYPE vhost_replied_total counter
//	vhost_replied_total 120
//
// It writes with a single call to w.
func (r *Registry) WriteText(w io.Writer) error {
	samples := r.gather()
	type line struct {
		name string
		s    sample
	}
	lines := make([]line, len(samples))
	for i, s := range samples {
		lines[i] = line{r.metricName(s.name), s}
	}
	slices.SortFunc(lines, func(a, b line) int { return strings.Compare(a.name, b.name) })

	var b strings.Builder
	for _, l := range lines {
		b.WriteString("# HELP ")
		b.WriteString(l.name)
		b.WriteByte(' ')
		b.WriteString(escapeHelp(l.s.help))
		b.WriteString("\n# TYPE ")
		b.WriteString(l.name)
		b.WriteString(" counter\n")
		b.WriteString(l.name)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(l.s.value, 10))
		b.WriteByte('\n')
	}
	r.writeFamilies(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary returns the non-zero counters as one line, "name=value" separated
// by spaces, in the order in which the sources report them (the order of
// Add, then each source's own order), e.g.
//
//	replied=120 not_for_us=1 rx_packets=121 tx_packets=120
//
// Names are the sanitised counter names, without prefix or suffix. Summary
// returns "" when every counter is zero.
func Summary(r *Registry) string {
	var b strings.Builder
	for _, s := range r.gather() {
		if s.value == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.name)
		b.WriteByte('=')
		b.WriteString(strconv.FormatUint(s.value, 10))
	}
	return b.String()
}

// sanitize makes name a valid metric name fragment: every character outside
// [a-zA-Z0-9_:] becomes one '_', and an empty name becomes "_".
func sanitize(name string) string {
	if name == "" {
		return "_"
	}
	valid := true
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			valid = false
			break
		}
	}
	if valid {
		return name
	}
	var b strings.Builder
	for _, c := range name { // an invalid UTF-8 byte is one RuneError
		if c < utf8.RuneSelf && isNameByte(byte(c)) {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_' || c == ':'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// escapeHelp escapes a HELP text as the 0.0.4 format asks: a backslash as
// \\ and a line feed as \n.
func escapeHelp(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
