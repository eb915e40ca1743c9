//go:build linux && race

package test

// raceEnabled: the suite runs under the race detector, so TestMain builds
// vhost with -race too; a data race in vhost then makes it exit with status
// 66, which the tests report as a wrong exit status.
func init() { raceEnabled = true }
