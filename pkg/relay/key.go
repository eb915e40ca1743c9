package relay

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Key is a 32-byte pre-shared key. Both ends of a keyed relay hold the same
// key; it authenticates the Noise NNpsk0 handshake, so a peer without it can
// neither connect nor read or forge traffic.
type Key [32]byte

// GenerateKey returns a new random key from crypto/rand.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("relay: generate key: %w", err)
	}
	return k, nil
}

// String returns the key in standard base64 (44 characters), the format
// ParseKey and LoadKey read.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParseKey parses a base64 key as String writes it. Surrounding white space
// is ignored.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	var k Key
	if len(s) != base64.StdEncoding.EncodedLen(len(k)) {
		return Key{}, fmt.Errorf("relay: key is %d characters long, want %d characters of base64 (make one with: vhost genkey)",
			len(s), base64.StdEncoding.EncodedLen(len(k)))
	}
	n, err := base64.StdEncoding.Decode(k[:], []byte(s))
	if err != nil {
		return Key{}, fmt.Errorf("relay: key is not valid base64: %w", err)
	}
	if n != len(k) {
		return Key{}, fmt.Errorf("relay: key decodes to %d bytes, want %d", n, len(k))
	}
	return k, nil
}

// LoadKey reads a key file written by "vhost genkey > FILE". It refuses a
// file that group or others may read or write, as ssh does for private keys.
func LoadKey(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Key{}, fmt.Errorf("relay: key file %s does not exist: create one with: vhost genkey > %s", path, path)
		}
		return Key{}, fmt.Errorf("relay: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("relay: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("relay: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("relay: key file %s has mode %#o: it must not be readable by others (chmod 600 %s)", path, perm, path)
	}
	// A key file is 45 bytes; read a little more to report a wrong file clearly.
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return Key{}, fmt.Errorf("relay: key file %s: %w", path, err)
	}
	k, err := ParseKey(string(buf[:n]))
	if err != nil {
		return Key{}, fmt.Errorf("relay: key file %s: %w", path, err)
	}
	return k, nil
}

// SecureStdout makes f private (mode 0600) if it is a regular file, so that
// "vhost genkey > FILE" does not leave a key readable by others. Pipes and
// terminals are left alone.
func SecureStdout(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("relay: stat %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("relay: chmod 600 %s: %w", f.Name(), err)
	}
	return nil
}
