// Package metrics is the small shared vocabulary of /metrics: the
// Collector interface every stage implements to say what it measures, a
// Writer it writes its samples to, and Prometheus, which turns a Collector
// into a prometheus.Collector (client_golang) for the api package's
// registry. It knows no stage; the node decides which collectors there
// are. README.md lists the metric names and their conventions.
package metrics
