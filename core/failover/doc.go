// Package failover is the RabbitMQ tier of the durability chain: it
// publishes a batch that Postgres could not take as one persistent message
// (signal.AppendBatch) to a durable quorum queue, with mandatory routing
// and publisher confirms, and reports it durable only on the broker's ack.
// The replay jobs (core/recovery) drain the queue back into Postgres with
// Drain (manual acks after COMMIT, a prefetch window, dead-lettering with
// a reason, bounded retries). Its connections are amqplink.Links. See
// README.md for the whole chain and its rationale.
package failover
