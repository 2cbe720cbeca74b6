package suite

import (
	"testing"
	"time"
)

func TestCPUBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := cpuSnap{at: t0, total: 10000, idle: 4000, self: 500, postgres: 300}
	// 10 s on 2 CPUs = 2000 ticks: 500 idle, so 1.5 cores busy; the bench
	// process used 600 ticks (0.6 cores), Postgres 500 (0.5).
	b := cpuSnap{at: t0.Add(10 * time.Second), total: 12000, idle: 4500, self: 1100, postgres: 800}
	c := cpuBetween(a, b, 2, 30000)
	near := func(got, want float64) bool { return got > want-1e-9 && got < want+1e-9 }
	if !near(c.Busy, 1.5) || !near(c.BenchProcess, 0.6) || !near(c.Postgres, 0.5) || !near(c.Other, 0.4) {
		t.Fatalf("cpu %+v, want busy 1.5, bench 0.6, postgres 0.5, other 0.4", c)
	}
	// 6 CPU seconds over 30,000 signals = 200 µs each; Postgres 5 s: 166.7.
	if !near(c.BenchUSPerSignal, 200) || c.PostgresUSPerSignal < 166.6 || c.PostgresUSPerSignal > 166.7 {
		t.Fatalf("per signal %+v", c)
	}
	if z := cpuBetween(b, a, 2, 1); z.Busy != 0 || z.BenchProcess != 0 {
		t.Fatalf("readings in the wrong order gave %+v", z)
	}
}

func TestReadCPUCountsThisProcess(t *testing.T) {
	a, ok := readCPU()
	if !ok {
		t.Fatal("no /proc/stat")
	}
	// Burn 0.3 s of CPU, however long a busy machine takes to give it.
	x := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		x++
		if x%1_000_000 == 0 {
			if now, _ := procTicks("/proc/self/stat"); now-a.self >= 30 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("this process's CPU time did not grow by 0.3 s in 30 s of busy looping")
			}
		}
	}
	b, _ := readCPU()
	c := cpuBetween(a, b, 2, 0)
	if c.BenchProcess <= 0 || c.Busy+0.05 < c.BenchProcess || b.total <= a.total {
		t.Fatalf("after 0.3 s of CPU in this process: %+v", c)
	}
}
