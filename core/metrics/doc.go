// Package metrics is the small shared vocabulary of /metrics: a Writer for
// the Prometheus text exposition format and the Collector interface every
// stage implements to say what it measures. It knows no stage; the api
// package serves what the collectors write, and the node decides which
// collectors there are.
package metrics
