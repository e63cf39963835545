package tfeclient

import (
	"context"
	"fmt"
)

// User is what the orchestrator reads of a TFE user.
type User struct {
	ID, Username string
}

// CurrentUserReader tells which user the token is.
type CurrentUserReader interface {
	// CurrentUser reads the token's user (TFE's account details): one
	// call. A token that is not a user's (an organization's or a team's)
	// gets an error Classify calls Gone, or a user without an ID.
	CurrentUser(ctx context.Context) (User, error)
}

// Organization is what the orchestrator reads of a TFE organization.
type Organization struct {
	Name string
}

// OrganizationReader reads one organization.
type OrganizationReader interface {
	// ReadOrganization reads the organization of this name: one call. A
	// name TFE does not know, or the token cannot see, is an error
	// Classify calls Gone.
	ReadOrganization(ctx context.Context, name string) (Organization, error)
}

// CurrentUser implements CurrentUserReader.
func (t *TFE) CurrentUser(ctx context.Context) (User, error) {
	u, err := t.client.Users.ReadCurrent(ctx)
	if err != nil {
		return User{}, fmt.Errorf("read the token's user: %w", err)
	}
	if u == nil {
		return User{}, nil
	}
	return User{ID: u.ID, Username: u.Username}, nil
}

// ReadOrganization implements OrganizationReader.
func (t *TFE) ReadOrganization(ctx context.Context, name string) (Organization, error) {
	o, err := t.client.Organizations.Read(ctx, name)
	if err != nil {
		return Organization{}, fmt.Errorf("read organization %s: %w", name, err)
	}
	return Organization{Name: o.Name}, nil
}
