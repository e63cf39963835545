// Package events takes TFE run notifications in and puts run events on the
// JetStream stream the workers consume.
//
// What it guarantees:
//
//   - Nothing unsigned gets in: every request must carry a valid
//     X-TFE-Notification-Signature for one of the configured tokens,
//     compared in constant time against every token (unless signatures
//     are explicitly skipped).
//   - A token bound to organizations signs their events only: a request
//     with an event of another organization is refused (401,
//     result="wrong_organization") and publishes nothing. A token not
//     bound to any signs events of every organization.
//   - Nothing is lost between TFE and the stream: the webhook answers 2xx
//     only after JetStream acknowledged every event of the request, and 503
//     when it could not, so TFE's delivery (or the reconciliation that
//     replaces it) tries again.
//   - Redelivery is harmless: each event is published with a
//     de-duplication ID derived from run, trigger, status and update time,
//     so within the stream's duplicate window the same notification is
//     stored once.
//   - Unauthenticated work is bounded: before its signature is checked a
//     request reserves its body's size against a cap on bytes and on
//     requests (MaxPendingBytes, MaxConcurrent), and a request that does
//     not fit is answered 503 with Retry-After without being read; a body
//     declared over MaxBodyBytes is refused unread, and a sender that
//     stalls is cut off after ReadTimeout.
//   - Bad input gets a 4xx, is counted in the metrics and logged once, and
//     publishes nothing. Payload versions and triggers it does not act on
//     are accepted and counted, never failed.
//   - What anyone can send cannot flood the log: refused requests and
//     unknown paths are logged at most RejectLogBurst lines at once, then
//     one per RejectLogEvery, with the count of those held back; a path is
//     logged cut to MaxLoggedPath bytes of printable ASCII. The metrics
//     count every one.
//   - Setting up converges: EnsureStream (and EnsureKeyValue, through
//     which every bucket is created: the engine's, the watchdog's, the
//     shared rate budget's) succeeds from every replica started at once on
//     a fresh cluster, within its deadline, and uses a stream or bucket
//     already as wanted without updating it. No other code creates or
//     updates one (TestOneBucketHelper).
//
// Subjects are tfe.run.<organization>.<workspace ID>.<run status>.
package events
