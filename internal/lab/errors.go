package lab

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem with a lab: an error, or a warning that does
// not stop the lab from running.
type FieldError struct {
	// File, Line and Column say where the field is in a lab file; empty
	// and zero for a lab built in code.
	File         string
	Line, Column int
	// Path is the field, e.g. devices[0].hosts[1].loss (indices from 0),
	// or hosts[1].loss in a file that gives one device at the top level.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
	// Warning marks problems that do not stop the lab.
	Warning bool
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Field is the name of the field the error is about, without indices:
// loss for devices[0].hosts[1].loss, hosts for devices[0].hosts[3].
func (e *FieldError) Field() string {
	p := e.Path
	for strings.HasSuffix(p, "]") {
		p = p[:strings.LastIndexByte(p, '[')]
	}
	return p[strings.LastIndexByte(p, '.')+1:]
}

// Within reports whether the error's path passes through the field name,
// e.g. Within("routers") for hosts[0].routers[2].mtu.
func (e *FieldError) Within(name string) bool {
	for _, seg := range strings.Split(e.Path, ".") {
		if i := strings.IndexByte(seg, '['); i >= 0 {
			seg = seg[:i]
		}
		if seg == name {
			return true
		}
	}
	return false
}

// Errors are all the errors found in a lab, in file order.
type Errors []*FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// sortErrors orders errors by position; errors without one keep their
// order, after those with one.
func sortErrors(es []*FieldError) {
	slices.SortStableFunc(es, func(a, b *FieldError) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
