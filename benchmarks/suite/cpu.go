package suite

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is where the machine's CPU time went during the load phase, in
// cores (CPU seconds per second of load): what bounded a figure, measured
// in the same run. The bench process holds the fleetcore node and the
// in-process load generator together; postgres is every process named
// postgres (the server's backends, writer, WAL writer, …; a backend that
// exits during the load is not counted); other is the rest of the
// machine's busy time (RabbitMQ, the kernel, a child `fleetcore simulate`).
type CPU struct {
	Cores        int     `json:"cores"`
	Busy         float64 `json:"busy_cores"`
	BenchProcess float64 `json:"bench_process_cores"`
	Postgres     float64 `json:"postgres_cores"`
	Other        float64 `json:"other_cores"`
	// Per signal acked during the load, in CPU microseconds.
	BenchUSPerSignal    float64 `json:"bench_process_us_per_signal,omitempty"`
	PostgresUSPerSignal float64 `json:"postgres_us_per_signal,omitempty"`
}

// cpuSnap is one reading of the counters behind CPU, in clock ticks.
type cpuSnap struct {
	at             time.Time
	total, idle    uint64 // /proc/stat, all CPUs
	self, postgres uint64
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readCPU() (cpuSnap, bool) {
	s := cpuSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return s, false
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 7 || i == 8 { // guest time is already counted in user and nice
			continue
		}
		s.total += n
		if i == 3 || i == 4 { // idle, iowait
			s.idle += n
		}
	}
	s.self, _ = procTicks("/proc/self/stat")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s, false
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if t, ok := procTicks("/proc/" + e.Name() + "/stat"); ok {
			s.postgres += t
		}
	}
	return s, true
}

// procTicks is utime+stime of one process.
func procTicks(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, true
}

// cpuBetween turns two readings into cores used; signals is what was
// acked between them.
func cpuBetween(a, b cpuSnap, cores int, signals int64) CPU {
	sec := b.at.Sub(a.at).Seconds()
	if sec <= 0 || b.total < a.total {
		return CPU{Cores: cores}
	}
	ticks := func(x, y uint64) float64 {
		if y < x {
			return 0
		}
		return float64(y-x) / clockTicks
	}
	// /proc/stat counts ticks of every CPU; busy is the non-idle share of
	// them times the number of CPUs.
	all := float64(b.total - a.total)
	c := CPU{Cores: cores}
	if all > 0 {
		c.Busy = float64(cores) * (all - float64(b.idle-a.idle)) / all
	}
	c.BenchProcess = ticks(a.self, b.self) / sec
	c.Postgres = ticks(a.postgres, b.postgres) / sec
	c.Other = max(c.Busy-c.BenchProcess-c.Postgres, 0)
	if signals > 0 {
		c.BenchUSPerSignal = ticks(a.self, b.self) / float64(signals) * 1e6
		c.PostgresUSPerSignal = ticks(a.postgres, b.postgres) / float64(signals) * 1e6
	}
	return c
}
