// Package amqplink is fleetcore's one RabbitMQ client connection: a Link
// keeps one connection with one confirm-mode channel alive, connects on
// demand, reconnects with exponential backoff after the connection or
// channel closes (the client library does not reconnect by itself),
// declares the caller's topology on every new connection, keeps the
// password out of every error it returns or logs, and publishes with
// publisher confirms (Publish). The failover tier (core/failover) and the
// alert publisher (core/integrity) both use it.
package amqplink
