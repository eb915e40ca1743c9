package stack

import "encoding/binary"

// sum adds b to the 32-bit one's complement accumulator acc (RFC 1071).
// The result must be folded with fold before use.
func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces the accumulator to 16 bits with end-around carry.
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = (acc & 0xffff) + acc>>16
	}
	return uint16(acc)
}

// checksum is the Internet checksum of b: the one's complement of the one's
// complement sum. A buffer that includes a correct checksum field yields 0.
func checksum(b []byte) uint16 {
	return ^fold(sum(b, 0))
}

// updateChecksum returns the checksum after a 16-bit word of the covered
// data changes from old to new, by RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
func updateChecksum(hc, old, new uint16) uint16 {
	acc := uint64(^hc) + uint64(^old) + uint64(new)
	return ^fold(acc)
}
