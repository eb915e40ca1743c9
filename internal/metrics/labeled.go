package metrics

import (
	"slices"
	"strconv"
	"strings"
)

// Labeled is one value of a labelled counter family: the label's value and
// the count, such as the host "web" and its 12 replies.
type Labeled struct {
	Label string
	Value uint64
}

// LabeledSource returns a snapshot of a labelled family. Like Source, it
// may be called from several goroutines at once.
type LabeledSource func() []Labeled

// Label is a label with a fixed value, such as dev="vhost0", that every
// sample of one AddLabeled call carries.
type Label struct {
	Name, Value string
}

type family struct {
	name, help, label string
	fixed             []Label
	get               LabeledSource
}

// AddLabeled adds a counter family <prefix>_<name>_total whose samples
// carry one label, e.g. name "host_replies" and label "host" give
// vhost_host_replies_total{host="web"} 12. fixed labels go in front of it
// in every sample of src: dev="vhost0" gives
// vhost_host_replies_total{dev="vhost0",host="web"} 12. Samples with the
// same labels (from one source or several added under the same name) are
// summed.
// Families are left out of Summary: one line per host would not be a
// summary.
func (r *Registry) AddLabeled(name, help, label string, src LabeledSource, fixed ...Label) {
	if src == nil {
		panic("metrics: AddLabeled with a nil LabeledSource")
	}
	fs := make([]Label, len(fixed))
	for i, l := range fixed {
		fs[i] = Label{sanitize(l.Name), l.Value}
	}
	r.mu.Lock()
	r.families = append(r.families, family{sanitize(name), help, sanitize(label), fs, src})
	r.mu.Unlock()
}

// labelSet renders the labels of one sample, the fixed ones first:
// dev="vhost0",host="web".
func labelSet(fixed []Label, name, value string) string {
	var b strings.Builder
	for _, l := range fixed {
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(l.Value))
		b.WriteString(`",`)
	}
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(escapeLabel(value))
	b.WriteByte('"')
	return b.String()
}

// writeFamilies appends the labelled families to b, sorted by name, each
// family's samples sorted by label value.
func (r *Registry) writeFamilies(b *strings.Builder) {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	type merged struct {
		help   string
		values map[string]uint64 // by label set
	}
	byName := make(map[string]*merged)
	var names []string
	for _, f := range fams {
		m := byName[f.name]
		if m == nil {
			m = &merged{help: f.help, values: make(map[string]uint64)}
			byName[f.name] = m
			names = append(names, f.name)
		}
		for _, v := range f.get() {
			m.values[labelSet(f.fixed, f.label, v.Label)] += v.Value
		}
	}
	slices.Sort(names)
	for _, n := range names {
		m := byName[n]
		full := r.metricName(n)
		b.WriteString("# HELP ")
		b.WriteString(full)
		b.WriteByte(' ')
		b.WriteString(escapeHelp(m.help))
		b.WriteString("\n# TYPE ")
		b.WriteString(full)
		b.WriteString(" counter\n")
		labels := make([]string, 0, len(m.values))
		for l := range m.values {
			labels = append(labels, l)
		}
		slices.Sort(labels)
		for _, l := range labels {
			b.WriteString(full)
			b.WriteByte('{')
			b.WriteString(l)
			b.WriteString("} ")
			b.WriteString(strconv.FormatUint(m.values[l], 10))
			b.WriteByte('\n')
		}
	}
}

// escapeLabel escapes a label value as the 0.0.4 format asks: backslash,
// double quote and line feed.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
