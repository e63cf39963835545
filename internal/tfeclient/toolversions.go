package tfeclient

import (
	"context"
	"fmt"

	tfe "github.com/hashicorp/go-tfe"
)

// TerraformVersion is a version of Terraform an installation of TFE
// offers its workspaces.
type TerraformVersion struct {
	Version             string
	Enabled, Deprecated bool
}

// AdminTerraformVersions reads the Terraform versions of the installation
// through TFE's admin API, which needs a site-admin token and which HCP
// Terraform does not have.
type AdminTerraformVersions interface {
	// ListTerraformVersions reads every Terraform version of the
	// installation: one call per page of PageSize.
	ListTerraformVersions(ctx context.Context) ([]TerraformVersion, error)
}

// ListTerraformVersions implements AdminTerraformVersions.
func (t *TFE) ListTerraformVersions(ctx context.Context) ([]TerraformVersion, error) {
	opts := &tfe.AdminTerraformVersionsListOptions{}
	versions, err := All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.AdminTerraformVersion, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := t.client.Admin.TerraformVersions.List(ctx, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list the installation's terraform versions: %w", err)
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]TerraformVersion, 0, len(versions))
	for _, v := range versions {
		out = append(out, TerraformVersion{Version: v.Version, Enabled: v.Enabled, Deprecated: v.Deprecated})
	}
	return out, nil
}
