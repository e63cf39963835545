// Package dispatcher is the cascade engine's shell around the decision
// core (internal/cascade): it consumes run events, keeps cascades in
// JetStream KV, reads TFE, and carries the core's decisions out. It
// decides nothing itself: what an event is worth, whether a run is a
// root, what the operators' controls mean and every member's fate are the
// core's; this gathers the facts the core asks for, calls it, and acts.
//
// It is level-triggered. Events, timers and takeovers only say "look at
// cascade X"; a look reads what it needs from TFE (the members' workspaces
// with their current runs, not only the cascade's own runs), decides, and
// stores the transitions by compare-and-swap before acting. What it
// guarantees:
//
//   - TFE is the truth (C12). A cascade starts only from a root run TFE
//     confirms applied, in the workspace and organization the event names,
//     within RootMaxAge; a root is handled once, however late a replay
//     comes (its record outlives RootMaxAge). A member's status is read
//     from TFE before anything downstream moves. Forged, replayed,
//     duplicated and out-of-order events change nothing.
//   - Exactly once with several replicas, fenced. A cascade is looked at by
//     one replica at a time, under a lease in KV; every TFE write ends
//     before the lease could expire, so a replica taking the cascade over
//     never writes beside a live one. The intent to create a run is stored
//     before the run is created, and a creation whose answer was lost is
//     found by the cascade's marker in the run's message before any other.
//   - A lost webhook of any run, the cascade's or TFE's, delays a cascade
//     and never stalls it: every open cascade is looked at in full at
//     least every Policy.Recheck.
//   - No event holds up the others: events only mark cascades for a look
//     (a bounded number of KV operations each, whatever the number of
//     open cascades); what TFE will never accept ends the event with an
//     alert; a refused token, rate limits and server errors back off with
//     jitter; an event delivered MaxDeliver times is dropped with an alert.
//   - State is replicated (every bucket has the configured replicas) and
//     validated when read: a malformed record is reported once and set
//     aside, and nothing read from NATS panics the daemon.
//   - With DryRun every decision is made and logged, and nothing is
//     written to TFE (C9).
//   - Output gating reads, per upstream run that applied, one list of its
//     workspace's two newest state versions with their outputs (two more
//     reads per sensitive output present in both). Output values are
//     hashed as they are read and dropped: never logged, stored or shown;
//     only the names of those that changed are kept. What keeps outputs
//     from being compared is a finding, and the member runs.
//   - Readers take nothing the engine needs. A look, a snapshot, a list
//     and the controls read by direct gets and open no JetStream consumer;
//     every Watch of a process shares one KV watch. However many readers,
//     the engine's consumers stay a fixed few a replica (its event
//     consumer and the watches of due entries and of metas).
//   - Operators' controls are checked before they are stored (who and why
//     bounded, an organization TFE knows) and every one used is kept in
//     the audit trail (Audit) for AuditRetention, with who, why, when and
//     what it changed; replacing a list records each entry added or
//     removed. Reading the trail opens no consumer either.
//   - Setting up converges: the buckets are created or read back whatever
//     the order and timing of replicas (events.EnsureKeyValue).
//
// It has three faces, on one store and one set of options (shared, never
// copied), so that a caller depends only on what it uses:
//
//   - Dispatcher is the engine: Run consumes events and reconciles
//     cascades (intake, looks, holds, actions, the schedule, prefetches,
//     output gating, gauges). It is the only one that writes a cascade's
//     state or talks to TFE about runs and workspaces.
//   - Reads (Dispatcher.Reads) is the read model: List, Snapshot, Watch,
//     Why, Paused, Freezes, Exclusions, Status and Audit. It changes
//     nothing and opens no consumer beyond the one shared watch; it is the
//     only way, outside this package, to see cascades.
//   - Controls (Dispatcher.Controls) are the operators' controls: Pause,
//     Resume, Cancel, Retry, Approve, SetExclusions and SetFreezes, each
//     checked, stored and kept in the audit trail. Of the engine they
//     only ask, through a small interface, that the cascades a control
//     concerns be looked at soon and that a retried cascade reopen; the
//     engine's next look applies the control.
package dispatcher
