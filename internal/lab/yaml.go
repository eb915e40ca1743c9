package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Load reads and checks the lab file at path. It returns the lab and its
// warnings, or an error: Errors, each with its line, when the file is
// wrong, or the error of reading it.
func Load(path string) (*Lab, []*FieldError, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: read %s: %w", path, errors.Unwrap(err))
	}
	return Parse(path, data)
}

// Parse decodes and checks a lab file; file names it in errors.
func Parse(file string, data []byte) (*Lab, []*FieldError, error) {
	src := &source{file: file, pos: map[string]pos{}}
	root, ferr := parseYAML(file, data)
	if ferr != nil {
		return nil, nil, Errors{ferr}
	}
	d := &decoder{src: src}
	l := d.lab(root)
	c := &checker{l: l}
	c.lab()
	if len(c.errs) == 0 && len(d.errs) == 0 {
		c.stacks()
	}
	warns, err := c.finish(d.errs)
	return l, warns, err
}

// parseYAML parses data into its one document's root node.
func parseYAML(file string, data []byte) (*yaml.Node, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, emptyError(file)
	}
	if err != nil {
		return nil, syntaxError(file, data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			return nil, syntaxError(file, data, err)
		}
		return nil, &FieldError{File: file, Line: line, Msg: "a second YAML document (after ---): a lab file holds one lab; put every device under devices"}
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, emptyError(file)
	}
	return root, nil
}

func emptyError(file string) *FieldError {
	return &FieldError{File: file, Msg: "the lab is empty: give at least hosts: [{addrs: [10.0.0.2]}] (see examples/hello.yaml)"}
}

var (
	yamlLineError = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
	flowColon     = regexp.MustCompile(`[\[,{]\s*::`)
)

// parserProblems are the errors of the YAML parser, as opposed to its
// scanner. go.yaml.in/yaml/v3 numbers their lines from 0 (and leaves out
// line 0), where it numbers the scanner's from 1.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected node content",
	"found undefined tag handle",
}

// syntaxError turns the YAML parser's error into one with the file and
// line in front.
func syntaxError(file string, data []byte, err error) *FieldError {
	m := yamlLineError.FindStringSubmatch(err.Error())
	if m == nil {
		return &FieldError{File: file, Msg: err.Error()}
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	if contains(parserProblems, msg) {
		line++
	}
	fe := &FieldError{File: file, Line: line, Msg: msg + " (YAML syntax)"}
	if msg == "did not find expected node content" {
		// "[::1]": an item starting with the ':' indicator.
		lines := strings.Split(string(data), "\n")
		for i := range lines {
			if flowColon.MatchString(lines[i]) {
				fe.Line = i + 1
				fe.Msg = msg + ": an IPv6 address starting with :: inside [...] must be quoted, e.g. [\"::ffff:1\"], or written as an indented - item"
				break
			}
		}
	}
	return fe
}

// source is where a lab was read from: its file, and the position of each
// field by path.
type source struct {
	file      string
	shorthand bool // the one device's fields are at the top level
	pos       map[string]pos
}

type pos struct{ line, col int }

// locate fills in e's file and position: the field's own, or that of the
// nearest enclosing field the file gives.
func (s *source) locate(e *FieldError) {
	e.File = s.file
	if e.Line != 0 {
		return
	}
	for p := e.Path; ; p = parent(p) {
		if at, ok := s.pos[p]; ok {
			e.Line, e.Column = at.line, at.col
			return
		}
		if p == "" {
			return
		}
	}
}

// parent strips the last field or index of a path.
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		return p[:strings.LastIndexByte(p, '[')]
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// decoder builds a Lab from YAML nodes, collecting every error.
type decoder struct {
	src  *source
	errs []*FieldError
	// work counts the values and keys visited: aliases of aliases can
	// make a small file stand for billions of them.
	work int
}

// maxWork bounds the values and keys one lab file may expand to.
const maxWork = 1 << 20

// busy counts one value or key at n, and reports whether the file has
// expanded to too many (once, at n).
func (d *decoder) busy(n *yaml.Node, path string) bool {
	d.work++
	if d.work == maxWork {
		d.errorf(n, path, "the file stands for more than %d values (aliases of aliases?); write it out", maxWork)
	}
	return d.work >= maxWork
}

// errorf records an error about the field at path, placed at node n.
func (d *decoder) errorf(n *yaml.Node, path string, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// mark records where the field at path is, for the checks that follow.
func (d *decoder) mark(path string, n *yaml.Node) {
	if _, ok := d.src.pos[path]; !ok {
		d.src.pos[path] = pos{n.Line, n.Column}
	}
}

// field decodes the value of one key at path.
type field struct {
	name   string
	decode func(v *yaml.Node, path string)
}

// Field names by level, for "did you mean" and "belongs under".
var (
	labFields    = []string{"seed", "icmp-rate", "icmp-burst", "devices"}
	deviceFields = []string{"name", "attach", "mode", "host-addrs", "host-mac", "mtu", "mac", "pcap", "hosts"}
	hostFields   = []string{"name", "addrs", "mac", "hops", "routers", "path-mtu", "delay", "jitter", "loss", "dup"}
	routerFields = []string{"addr4", "addr6", "mtu", "delay", "jitter", "loss", "dup"}
)

// resolve follows aliases (*name) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// pairs returns a mapping's key and value nodes, with YAML merge keys
// (<<: *defaults) expanded: a key given in the mapping itself wins.
func (d *decoder) pairs(n *yaml.Node, path string) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if d.busy(k, path) {
			return nil
		}
		if k.ShortTag() != "!!merge" {
			own = append(own, [2]*yaml.Node{k, v})
			continue
		}
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, s := range srcs {
			if s = resolve(s); s.Kind != yaml.MappingNode {
				d.errorf(k, join(path, "<<"), "a merge key (<<) takes a mapping or a list of mappings")
				continue
			}
			merged = append(merged, d.pairs(s, path)...)
		}
	}
	for _, m := range merged {
		if !hasKey(own, m[0].Value) {
			own = append(own, m)
		}
	}
	return own
}

func hasKey(ps [][2]*yaml.Node, key string) bool {
	for _, p := range ps {
		if p[0].Value == key {
			return true
		}
	}
	return false
}

// mapping decodes mapping n at path with fields; other keys are errors.
// level names the fields' level in messages ("a host").
func (d *decoder) mapping(n *yaml.Node, path, level string, fields []field) {
	n = resolve(n)
	d.mark(path, n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want %s's fields (key: value lines), got %s", level, describe(n))
		return
	}
	seen := map[string]int{}
	for _, kv := range d.pairs(n, path) {
		k, v := kv[0], kv[1]
		kp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, kp, "given twice (first on line %d); keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		f := lookupField(fields, k.Value)
		if f == nil {
			d.errorf(k, kp, "%s", unknownField(k.Value, level, fields))
			continue
		}
		d.mark(kp, v)
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			continue // "key:" with nothing after it: as if not given
		}
		f.decode(v, kp)
	}
}

func lookupField(fields []field, name string) *field {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

// unknownField explains a key that is not a field of level.
func unknownField(key, level string, fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	msg := fmt.Sprintf("unknown field %q for %s", key, level)
	for _, l := range []struct {
		name   string
		fields []string
		where  string
	}{
		{"the lab", labFields, "at the top level"},
		{"a device", deviceFields, "on a device (at the top level, or in a devices item)"},
		{"a host", hostFields, "on a host (a hosts item)"},
		{"a router", routerFields, "on a router (a routers item)"},
	} {
		if l.name != level && contains(l.fields, key) {
			return msg + fmt.Sprintf("; %s is a field of %s: put it %s", key, l.name, l.where)
		}
	}
	if s := closest(key, names); s != "" {
		return msg + fmt.Sprintf(" (did you mean %s?)", s)
	}
	return msg + "; the fields are " + strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closest returns the name nearest to key: the same once case, '-' and
// '_' are ignored, or within two edits; "" if none is.
func closest(key string, names []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, n := range names {
		if norm(n) == norm(key) {
			return n
		}
		if dist := editDistance(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names a node's kind for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "nothing"
}

// scalar returns the text of a single value, or reports an error.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n = resolve(n); n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// list calls each for every item of sequence n; a single value stands for
// a list of one.
func (d *decoder) list(n *yaml.Node, path string, each func(item *yaml.Node, path string)) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		each(n, index(path, 0))
		return
	}
	for i, item := range n.Content {
		ip := index(path, i)
		if d.busy(item, ip) {
			return
		}
		d.mark(ip, item)
		each(item, ip)
	}
}

// parseNode parses the single value n with parse, reporting errors.
func parseNode[T any](d *decoder, n *yaml.Node, path, want string, parse func(string) (T, error)) (T, bool) {
	var v T
	s, ok := d.scalar(n, path, want)
	if !ok {
		return v, false
	}
	v, err := parse(s)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return v, false
	}
	return v, true
}

// value decodes a single value with parse into *dst.
func value[T any](d *decoder, dst *T, want string, parse func(string) (T, error)) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := parseNode(d, n, path, want, parse); ok {
			*dst = v
		}
	}
}

// values decodes a list of values with parse, appending to *dst.
func values[T any](d *decoder, dst *[]T, want string, parse func(string) (T, error)) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.list(n, path, func(item *yaml.Node, ip string) {
			// A value that fails is kept as the zero value, so that
			// the next ones keep their index in the checks' paths.
			v, _ := parseNode(d, item, ip, want, parse)
			*dst = append(*dst, v)
		})
	}
}

func parseInt(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return v, nil
}

func parseSeed(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a seed: want a whole number from 0 to %d", s, uint64(1<<64-1))
	}
	return v, nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q: want true or false", s)
}

func parseString(s string) (string, error) { return s, nil }

func parseAddr(v4 bool) func(string) (netip.Addr, error) {
	return func(s string) (netip.Addr, error) {
		a, err := netip.ParseAddr(s)
		fam, eg := "IPv6", "2001:db8::1"
		if v4 {
			fam, eg = "IPv4", "192.0.2.1"
		}
		if err != nil || a.Is4() != v4 || a.Zone() != "" || a.Is4In6() {
			return netip.Addr{}, fmt.Errorf("%q is not an %s address (e.g. %s)", s, fam, eg)
		}
		return a, nil
	}
}

// The lab's levels.

func (d *decoder) lab(root *yaml.Node) *Lab {
	l := &Lab{Seed: DefaultSeed, ICMPRate: ICMPRate{DefaultICMPRate, DefaultICMPBurst}, src: d.src}
	root = resolve(root)
	d.mark("", root)
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "want the lab's fields (key: value lines, e.g. hosts:), got %s", describe(root))
		return l
	}
	hasDevices := hasKey(d.pairs(root, ""), "devices")
	fields := []field{
		{"seed", value(d, &l.Seed, "a seed", parseSeed)},
		{"icmp-rate", value(d, &l.ICMPRate.PerSecond, "a number", parseInt)},
		{"icmp-burst", value(d, &l.ICMPRate.Burst, "a number", parseInt)},
		{"devices", func(n *yaml.Node, path string) {
			d.list(n, path, func(item *yaml.Node, ip string) {
				l.Devices = append(l.Devices, Device{})
				d.device(item, ip, &l.Devices[len(l.Devices)-1])
			})
		}},
	}
	// A lab with one device may give the device's fields at the top
	// level: they go to that device.
	var one Device
	for _, f := range d.deviceFields(&one) {
		if hasDevices {
			name := f.name
			f.decode = func(n *yaml.Node, path string) {
				d.errorf(n, path, "with a devices list, %s goes on each device: move it into a devices item", name)
			}
		}
		fields = append(fields, f)
	}
	d.mapping(withoutExtensions(root), "", "the lab", fields)
	if !hasDevices {
		one.Mode = or(one.Mode, tundev.TUN)
		l.Devices = []Device{one}
		d.src.shorthand = true
	}
	return l
}

// withoutExtensions drops the top-level keys starting with "x-": they
// hold YAML anchors (x-slow: &slow {delay: 50ms}) for the rest of the file.
func withoutExtensions(root *yaml.Node) *yaml.Node {
	trimmed := *root
	trimmed.Content = nil
	for i := 0; i+1 < len(root.Content); i += 2 {
		if !strings.HasPrefix(root.Content[i].Value, "x-") {
			trimmed.Content = append(trimmed.Content, root.Content[i], root.Content[i+1])
		}
	}
	return &trimmed
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// deviceFields are the fields of a device, decoded into dev.
func (d *decoder) deviceFields(dev *Device) []field {
	return []field{
		{"name", value(d, &dev.Name, "a device name", parseString)},
		{"attach", value(d, &dev.Attach, "true or false", parseBool)},
		{"mode", value(d, &dev.Mode, "tun or tap", ParseMode)},
		{"host-addrs", values(d, &dev.HostSide, "an address with its prefix length", ParseHostSide)},
		{"host-mac", value(d, &dev.HostMAC, "a MAC address", ParseMAC)},
		{"mtu", value(d, &dev.MTU, "a number", parseInt)},
		{"mac", value(d, &dev.MAC, "a MAC address", ParseMAC)},
		{"pcap", value(d, &dev.Pcap, "a file name", parseString)},
		{"hosts", func(n *yaml.Node, path string) {
			d.list(n, path, func(item *yaml.Node, ip string) {
				dev.Hosts = append(dev.Hosts, Host{})
				d.host(item, ip, &dev.Hosts[len(dev.Hosts)-1])
			})
		}},
	}
}

func (d *decoder) device(n *yaml.Node, path string, dev *Device) {
	d.mapping(n, path, "a device", d.deviceFields(dev))
	dev.Mode = or(dev.Mode, tundev.TUN)
}

func (d *decoder) host(n *yaml.Node, path string, h *Host) {
	fields := []field{
		{"name", value(d, &h.Name, "a host name", parseString)},
		{"addrs", values(d, &h.Addrs, "an address or prefix", ParseAddrOrPrefix)},
		{"mac", value(d, &h.MAC, "a MAC address", ParseMAC)},
		{"hops", value(d, &h.Hops, "a number", parseInt)},
		{"routers", func(n *yaml.Node, path string) {
			d.list(n, path, func(item *yaml.Node, ip string) {
				h.Routers = append(h.Routers, Router{})
				d.router(item, ip, &h.Routers[len(h.Routers)-1])
			})
		}},
		{"path-mtu", value(d, &h.PathMTU, "a number", parseInt)},
	}
	d.mapping(n, path, "a host", append(fields, d.impairFields(&h.Impair)...))
}

// router decodes a router: a mapping, or its addresses as one value
// (192.0.2.1 or 192.0.2.1,2001:db8::1), as --router takes them.
func (d *decoder) router(n *yaml.Node, path string, r *Router) {
	if n = resolve(n); n.Kind == yaml.ScalarNode {
		value(d, r, "a router", ParseRouter)(n, path)
		return
	}
	fields := []field{
		{"addr4", value(d, &r.Addr4, "an IPv4 address", parseAddr(true))},
		{"addr6", value(d, &r.Addr6, "an IPv6 address", parseAddr(false))},
		{"mtu", value(d, &r.MTU, "a number", parseInt)},
	}
	d.mapping(n, path, "a router", append(fields, d.impairFields(&r.Impair)...))
}

func (d *decoder) impairFields(m *Impairment) []field {
	return []field{
		{"delay", value(d, &m.Delay, "a duration", ParseDuration)},
		{"jitter", value(d, &m.Jitter, "a duration", ParseDuration)},
		{"loss", value(d, &m.Loss, "a percentage", ParsePercent)},
		{"dup", value(d, &m.Dup, "a percentage", ParsePercent)},
	}
}
