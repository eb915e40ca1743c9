package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := k.String()
	if len(s) != 44 {
		t.Fatalf("Key.String() = %q (%d chars), want 44", s, len(s))
	}
	got, err := ParseKey("  " + s + "\n")
	if err != nil || got != k {
		t.Fatalf("ParseKey(%q) = %v, %v; want %v", s, got, err, k)
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"empty", "", "0 characters long"},
		{"short", "AAAA", "4 characters long"},
		{"bad base64", strings.Repeat("!", 44), "not valid base64"},
		{"too long", strings.Repeat("A", 48), "48 characters long"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKey(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	write := func(name string, mode os.FileMode, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", 0o600, k.String()+"\n")
	if got, err := LoadKey(good); err != nil || got != k {
		t.Fatalf("LoadKey(good) = %v, %v; want %v", got, err, k)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"world readable", write("k.key", 0o644, k.String()), "has mode 0644: it must not be readable by others (chmod 600 "},
		{"group writable", write("g.key", 0o620, k.String()), "has mode 0620"},
		{"missing", filepath.Join(dir, "none.key"), "create one with: vhost genkey > "},
		{"garbage", write("bad.key", 0o600, "hello"), "5 characters long"},
		{"empty", write("empty.key", 0o400, ""), "key file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKey(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadKey(%s) error = %v, want one containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestSecureStdout(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.key")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := SecureStdout(f); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after SecureStdout = %#o, want 0600", fi.Mode().Perm())
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := SecureStdout(w); err != nil {
		t.Fatalf("SecureStdout(pipe) = %v, want nil", err)
	}
}
