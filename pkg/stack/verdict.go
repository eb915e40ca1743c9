package stack

import "sync/atomic"

// Verdict says what Handle did with a packet. Every early return in the
// stack has one, and every verdict has a counter.
type Verdict uint8

const (
	// Replied: a reply (echo reply, ARP reply, neighbour advertisement) was
	// appended to the output.
	Replied Verdict = iota
	// FragmentQueued: a fragment was stored; its datagram is not complete yet.
	FragmentQueued
	// NotForUs: a well-formed packet for an address (or MAC) this host does
	// not own, including broadcast and multicast destinations.
	NotForUs
	// Unsupported: a well-formed packet of an EtherType this host does not
	// speak (VLAN tags, LLDP, ...).
	Unsupported
	// IgnoredICMP: ICMP other than echo request and the error messages.
	IgnoredICMP
	// IgnoredICMPError: an ICMP error message; RFC 1122 §3.2.2 forbids
	// answering one.
	IgnoredICMPError
	// IgnoredARP: an ARP operation other than request (replies are not
	// needed: echo replies go to the frame's source MAC).
	IgnoredARP
	// Truncated: shorter than the headers it must carry.
	Truncated
	// BadVersion: the IP version nibble does not match the packet.
	BadVersion
	// BadIHL: IPv4 header length below 5 words.
	BadIHL
	// BadTotalLength: IPv4 total length beyond the bytes read or below the
	// header length, or IPv6 payload length beyond the bytes read.
	BadTotalLength
	// BadIPChecksum: the IPv4 header checksum does not verify.
	BadIPChecksum
	// BadIPOptions: the IPv4 options, or the options of an IPv6 Hop-by-Hop
	// or Destination Options header, do not parse; or an unrecognized
	// IPv6 option's type says to discard the packet silently (RFC 8200 §4.2).
	BadIPOptions
	// BadSource: a source that cannot be answered: 0.0.0.0, broadcast,
	// multicast, or a multicast source MAC; for IPv6 ::, ::1, multicast or
	// IPv4-mapped.
	BadSource
	// BadICMPChecksum: the ICMP checksum does not verify.
	BadICMPChecksum
	// BadARP: ARP with a hardware type, protocol type or address sizes
	// other than Ethernet/IPv4, 6/4.
	BadARP
	// BadFragment: a fragment that cannot belong to a valid datagram (a
	// non-final fragment whose length is not a multiple of 8, data past
	// 65535 bytes or past the final fragment).
	BadFragment
	// FragmentOverlap: the fragment overlaps data already received; the whole
	// datagram is dropped (as RFC 5722 asks of IPv6 and Linux does for IPv4).
	FragmentOverlap
	// FragmentLimit: the reassembly memory for the fragment's source is full.
	FragmentLimit
	// ReplyTooLarge: the reply would not fit the output (never expected with
	// the documented buffer sizes).
	ReplyTooLarge
	// TimeExceeded: the TTL (hop limit) ran out at a simulated router,
	// which sent Time Exceeded.
	TimeExceeded
	// TooBig: the packet was larger than a simulated path's MTU; a router
	// (or the host) sent "fragmentation needed" / "packet too big".
	TooBig
	// PortUnreachable: UDP to a host, which sent Port Unreachable.
	PortUnreachable
	// ProtoUnreachable: a transport protocol the host does not speak; it
	// sent Protocol Unreachable (IPv4) or a Parameter Problem (IPv6).
	ProtoUnreachable
	// Reset: a TCP segment, answered with a reset.
	Reset
	// IgnoredReset: a TCP reset, which is never answered.
	IgnoredReset
	// ErrorSuppressed: an ICMP error was due but RFC 1812 §4.3.2.7 (RFC
	// 4443 §2.4 for IPv6) forbids it: the packet was an ICMP error, a
	// fragment other than the first, or sent to a link-layer broadcast.
	ErrorSuppressed
	// ICMPRateLimited: an ICMP error was due but the rate limit was reached.
	ICMPRateLimited
	// BadL4Length: a UDP length or TCP data offset that does not fit the
	// datagram.
	BadL4Length
	// BadL4Checksum: a UDP or TCP checksum that does not verify.
	BadL4Checksum
	// IgnoredND: a neighbour discovery message the host does not answer:
	// router solicitations and advertisements, neighbour advertisements,
	// redirects, and neighbour solicitations on TUN (RFC 4861).
	IgnoredND
	// BadND: a neighbour discovery message that fails RFC 4861 §7.1.1's
	// validity checks (hop limit 255, code 0, length, target, options,
	// unspecified source), or one in fragments (RFC 6980 §5).
	BadND
	// ParamProblem: an IPv6 header the host cannot process (RFC 8200 §4):
	// a Routing header with segments left, or an unrecognized option whose
	// type asks for a Parameter Problem, which was sent.
	ParamProblem
	// NoNextHeader: an IPv6 packet whose last header says nothing follows
	// (RFC 8200 §4.7).
	NoNextHeader

	numVerdicts
)

var verdictNames = [numVerdicts]string{
	Replied:          "replied",
	FragmentQueued:   "fragment_queued",
	NotForUs:         "not_for_us",
	Unsupported:      "unsupported",
	IgnoredICMP:      "ignored_icmp",
	IgnoredICMPError: "ignored_icmp_error",
	IgnoredARP:       "ignored_arp",
	Truncated:        "truncated",
	BadVersion:       "bad_version",
	BadIHL:           "bad_ihl",
	BadTotalLength:   "bad_total_length",
	BadIPChecksum:    "bad_ip_checksum",
	BadIPOptions:     "bad_ip_options",
	BadSource:        "bad_source",
	BadICMPChecksum:  "bad_icmp_checksum",
	BadARP:           "bad_arp",
	BadFragment:      "bad_fragment",
	FragmentOverlap:  "fragment_overlap",
	FragmentLimit:    "fragment_limit",
	ReplyTooLarge:    "reply_too_large",
	TimeExceeded:     "time_exceeded",
	TooBig:           "too_big",
	PortUnreachable:  "port_unreachable",
	ProtoUnreachable: "proto_unreachable",
	Reset:            "tcp_reset",
	IgnoredReset:     "ignored_reset",
	ErrorSuppressed:  "error_suppressed",
	ICMPRateLimited:  "icmp_rate_limited",
	BadL4Length:      "bad_l4_length",
	BadL4Checksum:    "bad_l4_checksum",
	IgnoredND:        "ignored_nd",
	BadND:            "bad_nd",
	ParamProblem:     "parameter_problem",
	NoNextHeader:     "no_next_header",
}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Event counters that are not the verdict of an input packet.
type event uint8

const (
	evTxPackets     event = iota // packets and frames appended to the output
	evFragTimeout                // datagrams dropped unfinished after the reassembly timeout
	evFragEvicted                // datagrams dropped to make room under the global memory bound
	evAnnouncements              // gratuitous ARP announcements made
	evICMPErrors                 // ICMP error messages sent
	evNDAnnounce                 // unsolicited neighbour advertisements made
	// The impairments' events count packets (every fragment of a reply), so
	// that the packets handed to the device are tx_packets - impair_lost +
	// impair_duplicated.
	evImpairLost       // packets a simulated path lost
	evImpairDuplicated // packets a simulated path duplicated (the copies)
	evImpairDelayed    // packets handed out with a delay
	evImpairDupNoRoom  // duplicates not made: the output had no room for them
	numEvents
)

var eventNames = [numEvents]string{
	evTxPackets:     "tx_packets",
	evFragTimeout:   "fragment_timeout",
	evFragEvicted:   "fragment_evicted",
	evAnnouncements: "arp_announcements",
	evICMPErrors:    "icmp_errors",
	evNDAnnounce:    "nd_announcements",

	evImpairLost:       "impair_lost",
	evImpairDuplicated: "impair_duplicated",
	evImpairDelayed:    "impair_delayed",
	evImpairDupNoRoom:  "impair_dup_no_room",
}

// counters are updated by the goroutine that calls Handle and may be read
// from any goroutine.
type counters struct {
	verdicts [numVerdicts]atomic.Uint64
	events   [numEvents]atomic.Uint64
}

// Counter is one named counter value.
type Counter struct {
	Name  string
	Value uint64
}

// Counters returns every counter in a fixed order: the verdicts, then the
// events. Names are stable snake_case identifiers.
func (s *Stack) Counters() []Counter {
	out := make([]Counter, 0, int(numVerdicts)+int(numEvents))
	for v := Verdict(0); v < numVerdicts; v++ {
		out = append(out, Counter{verdictNames[v], s.ctr.verdicts[v].Load()})
	}
	for e := event(0); e < numEvents; e++ {
		out = append(out, Counter{eventNames[e], s.ctr.events[e].Load()})
	}
	return out
}

// Count returns the counter of one verdict.
func (s *Stack) Count(v Verdict) uint64 {
	if v >= numVerdicts {
		return 0
	}
	return s.ctr.verdicts[v].Load()
}

// HostCounter is the traffic of one Host entry of the Config.
type HostCounter struct {
	// Name is the Host's Name, or its first address when it has none.
	Name string
	// Rx counts packets for its addresses (ARP and neighbour discovery
	// included); Replies counts what its hosts and routers sent back.
	Rx, Replies uint64
}

// HostCounters returns one HostCounter per Host entry, in Config order
// (the Hosts, then one per Addrs entry).
func (s *Stack) HostCounters() []HostCounter {
	out := make([]HostCounter, len(s.hosts))
	for i := range s.hosts {
		h := &s.hosts[i]
		out[i] = HostCounter{h.name, h.rx.Load(), h.replies.Load()}
	}
	return out
}
