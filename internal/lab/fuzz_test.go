package lab

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vhost-dev/vhost/pkg/stack"
)

// FuzzParse feeds lab files, seeded with the examples, to Parse: nothing
// may panic; a file Parse accepts must map onto stacks that stack.New
// accepts too (the check promises that), and every error must name the
// file and a line.
func FuzzParse(f *testing.F) {
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, e := range examples {
		b, err := os.ReadFile(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("hosts: [{addrs: [10.0.0.0/16], hops: 3, loss: 10%}]\n"))
	f.Add([]byte("devices: [{name: a, hosts: [{addrs: ['fd00::/112'], routers: ['192.0.2.1,2001:db8::1']}]}]\n"))
	f.Add([]byte("x-a: &a {delay: 1ms}\nhosts: [{<<: *a, addrs: [10.0.0.2]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _, err := Parse("lab.yaml", data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error is not Errors: %v", err)
			}
			for _, e := range errs {
				if s := e.Error(); !strings.HasPrefix(s, "lab.yaml:") {
					t.Fatalf("error does not name the file and line: %q", s)
				}
			}
			return
		}
		for i := range l.Devices {
			if _, err := stack.New(l.StackConfig(i)); err != nil {
				t.Fatalf("Parse accepted a lab whose device %d stack.New refuses: %v", i, err)
			}
			_ = l.Routes(i, l.Devices[i].EffectiveHostSide())
		}
		_ = l.Totals()
		_ = l.WriteSummary(io.Discard)
	})
}
