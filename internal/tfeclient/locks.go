package tfeclient

import (
	"context"
	"fmt"

	tfe "github.com/hashicorp/go-tfe"
)

// TFE's answers to a lock or an unlock that it refused (409), as errors
// the errors of WorkspaceLocker's methods wrap (errors.Is). They are
// go-tfe's own, so that either package's name matches.
var (
	// ErrWorkspaceLocked: the workspace to lock is locked already.
	ErrWorkspaceLocked = tfe.ErrWorkspaceLocked
	// ErrWorkspaceNotLocked: the workspace to unlock is not locked.
	ErrWorkspaceNotLocked = tfe.ErrWorkspaceNotLocked
	// ErrWorkspaceLockedByRun, ErrWorkspaceLockedByUser and
	// ErrWorkspaceLockedByTeam: the workspace to unlock is held by a
	// run, or by a user or a team other than the token's.
	ErrWorkspaceLockedByRun  = tfe.ErrWorkspaceLockedByRun
	ErrWorkspaceLockedByUser = tfe.ErrWorkspaceLockedByUser
	ErrWorkspaceLockedByTeam = tfe.ErrWorkspaceLockedByTeam
)

// WorkspaceLocker locks and unlocks workspaces as the token's user.
type WorkspaceLocker interface {
	// LockWorkspace locks the workspace, giving reason: one call. A
	// workspace locked already is ErrWorkspaceLocked.
	LockWorkspace(ctx context.Context, workspaceID, reason string) error
	// UnlockWorkspace unlocks a workspace the token's user locked: one
	// call. A workspace nobody holds is ErrWorkspaceNotLocked; one
	// another holds, ErrWorkspaceLockedByRun, ErrWorkspaceLockedByUser
	// or ErrWorkspaceLockedByTeam.
	UnlockWorkspace(ctx context.Context, workspaceID string) error
}

// LockWorkspace implements WorkspaceLocker.
func (t *TFE) LockWorkspace(ctx context.Context, workspaceID, reason string) error {
	if _, err := t.client.Workspaces.Lock(ctx, workspaceID, tfe.WorkspaceLockOptions{Reason: optional(reason)}); err != nil {
		return fmt.Errorf("lock workspace %s: %w", workspaceID, err)
	}
	return nil
}

// UnlockWorkspace implements WorkspaceLocker.
func (t *TFE) UnlockWorkspace(ctx context.Context, workspaceID string) error {
	if _, err := t.client.Workspaces.Unlock(ctx, workspaceID); err != nil {
		return fmt.Errorf("unlock workspace %s: %w", workspaceID, err)
	}
	return nil
}
