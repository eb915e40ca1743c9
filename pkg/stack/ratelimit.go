package stack

import "time"

// tokenBucket limits ICMP error messages like Linux's icmp_global_allow:
// PerSecond tokens a second, at most Burst in the bucket.
type tokenBucket struct {
	perSecond int
	burst     int
	tokens    float64
	last      time.Time
	unlimited bool
}

func (s *Stack) initRate(cfg ICMPRateLimit) {
	b := &s.rate
	switch {
	case cfg.PerSecond < 0:
		b.unlimited = true
		return
	case cfg.PerSecond == 0:
		cfg.PerSecond = 1000
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 50
	}
	b.perSecond, b.burst, b.tokens = cfg.PerSecond, cfg.Burst, float64(cfg.Burst)
}

// allowError takes a token for one ICMP error message, if there is one.
func (s *Stack) allowError() bool {
	b := &s.rate
	if b.unlimited {
		return true
	}
	now := s.now()
	if !b.last.IsZero() {
		if d := now.Sub(b.last); d > 0 {
			b.tokens = min(float64(b.burst), b.tokens+d.Seconds()*float64(b.perSecond))
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
