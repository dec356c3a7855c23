// Package observe is the service's observability: request ids, a structured logger that stamps them
// on every record, a one-line-per-request access log, and Prometheus metrics on a dedicated
// registry (HTTP latency, GraphQL operation outcomes, authentication events, the Go runtime, the
// process and the database pool).
//
// Nothing here ever logs or labels a header, a body or a query string: they carry tokens and
// passwords. Labels that clients influence (the GraphQL operation name) are bounded, so a client
// cannot grow the number of time series without limit.
package observe
