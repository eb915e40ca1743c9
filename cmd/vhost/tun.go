package main

import (
	"io"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

const mktunUsage = `Usage: vhost mktun --dev NAME [--mode tun|tap] [--user U] [--group G] [--multi-queue]

Creates a persistent TUN/TAP device (like 'ip tuntap add' or 'openvpn --mktun').
It stays after vhost exits; with --user or --group, that user or group can
attach to it without root: vhost --dev NAME.

Flags:
`

func mktun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vhost mktun", mktunUsage, stdout)
	dev := fs.String("dev", "", "device `name` (required)")
	mode := fs.String("mode", "tun", "device `mode`: tun or tap")
	user := fs.String("user", "", "owner: a user `name or uid`")
	group := fs.String("group", "", "owning group: a group `name or gid`")
	mq := fs.Bool("multi-queue", false, "create a multi-queue device")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dev == "" {
		return usagef("mktun needs --dev NAME")
	}
	m, err := tundev.ParseMode(*mode)
	if err != nil {
		return usagef("--mode %q: want tun or tap", *mode)
	}
	pc := tundev.PersistConfig{Name: *dev, Mode: m, MultiQueue: *mq, Owner: -1, Group: -1}
	if *user != "" {
		if pc.Owner, err = tundev.LookupOwner(*user); err != nil {
			return usageError{err}
		}
	}
	if *group != "" {
		if pc.Group, err = tundev.LookupGroup(*group); err != nil {
			return usageError{err}
		}
	}
	name, err := tundev.CreatePersistent(pc)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stderr, "vhost: created persistent "+m.String()+" device "+name+"\n")
	return err
}

const rmtunUsage = `Usage: vhost rmtun --dev NAME

Deletes a persistent TUN/TAP device.

Flags:
`

func rmtun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vhost rmtun", rmtunUsage, stdout)
	dev := fs.String("dev", "", "device `name` (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dev == "" {
		return usagef("rmtun needs --dev NAME")
	}
	if !tundev.Exists(*dev) {
		return usagef("device %s does not exist (see: ip link show)", *dev)
	}
	if err := tundev.DeletePersistent(*dev); err != nil {
		return err
	}
	_, err := io.WriteString(stderr, "vhost: deleted device "+*dev+"\n")
	return err
}
