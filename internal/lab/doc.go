// Package lab is the model of what vhost runs: a lab of one or more
// devices, each with its virtual hosts, the routers in front of them and
// what the path does to their packets. The command line (vhost's flags)
// and lab files (vhost run --config FILE) both build a Lab, which is
// validated once, here, and turned into one stack.Config per device.
//
// # Lab files
//
// A lab file is YAML. A lab with one device may give the device's fields
// at the top level:
//
//	seed: 1                  # same seed, same losses and delays, run after run
//	mode: tap
//	host-addrs: [10.0.0.1/24, fd00::1/64]
//	hosts:
//	  - name: web
//	    addrs: [10.0.0.2, fd00::2]
//	  - name: far
//	    addrs: [10.0.1.0/24]
//	    hops: 3              # three generated routers: 198.18.0.1, .2, .3
//	    delay: 20ms
//	    loss: 10%
//
// and a lab with several puts them in a list, devices: [{name: lab0, ...},
// {name: lab1, ...}]. Fields are named like vhost's flags (--host-addr is
// host-addrs, --path-mtu is path-mtu); unknown fields are errors, and every
// error names the file, the line, the column and the field's path:
//
//	lab.yaml:12:11: hosts[1].loss: "110%" is above 100%
//
// # Why YAML
//
// A lab is nested lists: devices hold hosts, hosts hold routers, routers
// hold impairments. YAML writes those as indented lists that read like the
// network they describe, takes comments (the examples are lessons as much
// as configurations), and needs no quoting for addresses, durations or
// percentages. TOML was the alternative; its arrays of tables
// ([[devices.hosts.routers]]) repeat the whole path at every level and
// lose the nesting a reader wants to see. YAML's known traps (yes/no
// booleans, sexagesimal numbers, implicit typing) do not apply here: the
// file is decoded through yaml.Node, so each value is read as the text the
// user wrote and parsed by this package's own parsers, the same ones the
// flags use, and every node carries the line and column that errors quote,
// for semantic errors (an address given twice, a percentage above 100) as
// much as for syntax errors. The library is go.yaml.in/yaml/v3, the YAML
// organisation's maintained continuation of gopkg.in/yaml.v3.
package lab
