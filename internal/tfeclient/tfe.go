package tfeclient

import (
	"fmt"

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

// Connect reaches the TFE at address with token through a go-tfe client
// of its own, with go-tfe's defaults: none of NewClient's limiter,
// metrics or retries. It is for a program that acts on TFE as a person
// would (the demo), not for the daemon. go-tfe asks TFE's /ping once.
func Connect(address, token string) (*TFE, error) {
	client, err := tfe.NewClient(&tfe.Config{Address: address, Token: token})
	if err != nil {
		return nil, fmt.Errorf("connect to TFE at %s: %w", address, err)
	}
	return New(client), nil
}
