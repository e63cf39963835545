// Package tfesim is an in-memory Terraform Cloud / Enterprise (TFE) that the
// unmodified go-tfe client can drive: organizations, users, workspaces and
// their locks and tags, run triggers, runs and their comments,
// configuration versions, state versions and their outputs, notification
// configurations and the admin runs and Terraform versions APIs, in TFE's
// JSON:API wire format.
//
// What it guarantees:
//
//   - Runs move through TFE's statuses on an injected Clock, each transition
//     at its own due time: with a ManualClock nothing moves until Advance.
//     Phases take Options.Timing (by default 1s queued, 4s planning, 1s
//     queued, 4s applying) unless a workspace's Behavior sets durations.
//   - A run holds its workspace's lock from leaving pending until it ends,
//     and stays its current run after that; others wait pending in creation
//     order; a workspace a user locked starts none. Plan-only runs ignore
//     the lock and the queue.
//   - Each run action is allowed exactly where the run's actions.is-*able
//     flags say so, and answers 409 elsewhere; the admin force-cancel ends a
//     run canceled.
//   - A run that applies queues a run in every target of its workspace's run
//     triggers, like TFE's native run triggers.
//   - A run that applies writes its workspace a finalized state version,
//     serial one above the last, holding the outputs the workspace's
//     Behavior sets at that moment (none for a destroy); a run without
//     changes writes none. For Timing.StateProcessing after the apply the
//     state version is not processed: it shows no outputs and the
//     workspace's current outputs answer 503. A sensitive output's value is
//     null everywhere but GET /state-version-outputs/:id. State versions go
//     with their workspace.
//   - Notifications for one simulator are delivered one at a time in the
//     order their events happened, signed with HMAC-SHA512 under the
//     configuration's token. Like TFE, a failed delivery is not retried.
//   - Requests are rate limited per token on the wall clock (30/s by
//     default) with 429 and X-RateLimit-Reset, and counted per route.
//
// Where it is not faithful: it runs no Terraform (plans, applies, the
// resources in state, policies, cost estimates, run tasks and VCS are
// absent; state holds only outputs); every user is a workspace admin and
// there are no teams; and where TFE's behaviour is not
// documented (the user force-cancel's final status, force-unlock of a run's
// lock, where workspaces without a current run sort descending, the
// messages of run-trigger runs, ...) it makes a documented choice.
// docs/tfesim.md has the fidelity table with the evidence for each
// behaviour.
//
// The control API under /_sim/ (not part of TFE) sets per-workspace
// behaviour and the phase timing, injects latency and errors, and reads the
// counters.
package tfesim
