// Package integrity keeps an explainable integrity score for every device,
// and raises alerts from it. (The service checks are core/health's.)
//
// It has three layers:
//   - a pure core (Aggregate, Compute) that turns a device's records and
//     rule statistics into hourly windows, a 0–100 score with points lost
//     attributed to dimensions and checks, a score history and the alerts
//     that should be open; all arithmetic is integer so tests assert exact
//     scores;
//   - a database layer (Scorer) that loads those inputs from Postgres,
//     stores windows, scores, history and alert transitions, and runs as the
//     organizer job "score";
//   - delivery (Publisher) of alert transitions to a RabbitMQ topic exchange
//     and an optional webhook.
//
// See README.md in this folder for the score's definition and weights.
package integrity
