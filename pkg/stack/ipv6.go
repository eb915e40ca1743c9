package stack

// handleIPv6 is IPv6's entry point. l is the Ethernet context, nil on TUN.
func (s *Stack) handleIPv6(pkt []byte, l *link, out *Out) Verdict {
	return Unsupported
}

// announce6 appends an unsolicited neighbour advertisement for a, owned
// by entry e; false when out is full.
func (s *Stack) announce6(out *Out, a *[16]byte, e int32) bool {
	return true
}
