package tfeclient

import (
	tfe "github.com/hashicorp/go-tfe"
)

// TFE reaches TFE through one go-tfe client, in the orchestrator's own
// types: it implements the small interfaces of this package
// (WorkspaceLister, RunTriggerLister, ...), which the packages that read
// or change TFE take instead of go-tfe's services. Each concern is in a
// file of its own (workspaces.go, runtriggers.go, ...).
//
// Its methods read lists with EachPage, wrap go-tfe's errors with short
// context and %w (Classify reads them as it reads go-tfe's), and add no
// retry, cache or limit of their own: those are the client's (NewClient).
// It is safe for concurrent use, as the client is.
type TFE struct {
	client *tfe.Client
}

// New reaches TFE through client.
func New(client *tfe.Client) *TFE { return &TFE{client: client} }
