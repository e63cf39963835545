// Package dispatcher drives cascades: when a run applies in a workspace
// with run triggers, every workspace downstream of it gets one run, in
// dependency order, each after all its upstreams in the cascade applied.
//
// What it guarantees (the rules C1–C9 of DESIGN.md):
//
//   - Once per workspace per cascade (C2): the intent to dispatch is
//     recorded by compare-and-swap in JetStream KV before the run is
//     created; the run's message carries the cascade's marker, and a
//     retried dispatch looks for a run with that marker before creating
//     one. Redelivered, duplicated and out-of-order events change nothing.
//   - Order (C3): a run is created only once every barrier workspace has
//     applied (or finished with no changes, where configured).
//   - Failure and cycles (C4, C5): what can no longer run is blocked, never
//     dispatched, and reported; the rest proceeds.
//   - Any replica continues any cascade after any restart: all state is in
//     the KV bucket, events come from a durable consumer with explicit
//     acks, and an intent whose dispatcher died is taken over after the
//     ack wait.
//   - A lost webhook delays a cascade, never stalls it: runs with no news
//     are read through the API.
//   - Overlap (C6): a cascade that reaches a workspace where another
//     cascade's run has not started shares that run; at most one follow-up
//     is held per workspace.
//   - Runs queued by TFE's native run triggers in a workspace a cascade is
//     to run are discarded (or cancelled) with a comment naming the
//     cascade (C7).
//   - With DryRun, every decision is made and logged and nothing is
//     written to TFE (C9).
package dispatcher
