// Package tfesim is an in-memory Terraform Cloud / Enterprise (TFE) that the
// unmodified go-tfe client can drive: organizations, workspaces, run
// triggers, runs, configuration versions, notification configurations and
// the admin runs and Terraform versions APIs, in TFE's JSON:API wire format.
//
// What it guarantees:
//
//   - Runs move through TFE's statuses on an injected Clock, each transition
//     at its own due time: with a ManualClock nothing moves until Advance.
//     One run holds a workspace at a time; others wait pending in creation
//     order; a locked workspace starts none.
//   - A run that applies queues a run in every target of its workspace's run
//     triggers, like TFE's native run triggers.
//   - Notifications for one simulator are delivered one at a time in the
//     order their events happened, signed with HMAC-SHA512 under the
//     configuration's token. Like TFE, a failed delivery is not retried.
//   - Requests are rate limited per token on the wall clock (30/s by
//     default) with 429 and X-RateLimit-Reset, and counted per route.
//
// The control API under /_sim/ (not part of TFE) sets per-workspace
// behaviour, injects latency and errors, and reads the counters. It is
// documented in docs/tfesim.md.
package tfesim
