// Package config loads fleetcore's HCL configuration: strict decoding (an
// unknown key is an error naming file and line), defaults for every value,
// environment overrides (FLEETCORE_DATABASE_URL, FLEETCORE_AMQP_URL) and
// validation that reports every problem at once.
package config
