package metrics

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// RunSummary logs Summary(r) at info level once per every until ctx is done,
// skipping a line when nothing changed since the last one logged (and while
// every counter is zero). It returns when ctx is done, at once if every is
// not positive (the periodic summary is off).
func RunSummary(ctx context.Context, every time.Duration, r *Registry, log zerolog.Logger) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := Summary(r)
		if s == last {
			continue
		}
		last = s
		if s != "" { // counters went back to zero: only a test does that
			log.Info().Msg(s)
		}
	}
}
