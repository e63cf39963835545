package tfesim_test

import (
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The default list looks like an installation's: several 1.x releases,
// old ones deprecated or disabled, official and not, each with its builds
// (archs) and a usage count.
func TestDefaultTerraformVersions(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	if _, err := e.client.Workspaces.Create(e.ctx, "acme", tfe.WorkspaceCreateOptions{Name: tfe.String("pinned"), TerraformVersion: tfe.String("1.5.7")}); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.Admin.TerraformVersions.List(e.ctx, &tfe.AdminTerraformVersionsListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var ones, deprecated, disabled, unofficial, beta int
	for _, v := range list.Items {
		if v.Version[:2] == "1." {
			ones++
		}
		if v.Deprecated {
			deprecated++
			if v.DeprecatedReason == nil || *v.DeprecatedReason == "" {
				t.Errorf("%s: deprecated without a reason", v.Version)
			}
		}
		if !v.Enabled {
			disabled++
		}
		if !v.Official {
			unofficial++
		}
		if v.Beta {
			beta++
		}
		if len(v.Archs) != 2 || v.Archs[0].Arch != "amd64" || v.Archs[1].Arch != "arm64" || v.URL != v.Archs[0].URL || v.Sha != v.Archs[0].Sha || len(v.Sha) != 64 {
			t.Errorf("%s: archs %+v, url %q; want linux amd64 and arm64 builds, url and sha of amd64", v.Version, v.Archs, v.URL)
		}
		if want := map[bool]int{true: 1}[v.Version == "1.5.7"]; v.Usage != want {
			t.Errorf("%s: usage %d, want %d", v.Version, v.Usage, want)
		}
	}
	if ones < 10 || deprecated < 3 || disabled < 2 || unofficial != 1 || beta != 1 {
		t.Errorf("got %d 1.x, %d deprecated, %d disabled, %d unofficial, %d beta", ones, deprecated, disabled, unofficial, beta)
	}
}

// archs on create and update, as go-tfe's integration tests show TFE
// handling them: url and sha alone make one linux/amd64 build; archs
// replace the builds, and url and sha follow the amd64 one, if any.
func TestTerraformVersionArchs(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	admin := e.client.Admin.TerraformVersions
	amd, arm := tfe.ToolVersionArchitecture{URL: "https://example.test/amd64.zip", Sha: "aaa", OS: "linux", Arch: "amd64"},
		tfe.ToolVersionArchitecture{URL: "https://example.test/arm64.zip", Sha: "bbb", OS: "linux", Arch: "arm64"}

	plain, err := admin.Create(e.ctx, tfe.AdminTerraformVersionCreateOptions{Version: tfe.String("2.0.0"), URL: tfe.String("https://example.test/tf.zip"), Sha: tfe.String("ccc")})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Archs) != 1 || *plain.Archs[0] != (tfe.ToolVersionArchitecture{URL: "https://example.test/tf.zip", Sha: "ccc", OS: "linux", Arch: "amd64"}) {
		t.Errorf("url and sha only: archs %+v, want one linux/amd64 build", plain.Archs)
	}
	if !plain.Enabled || plain.Official || plain.Deprecated || plain.Beta {
		t.Errorf("defaults: got %+v, want enabled, not official, deprecated or beta", plain)
	}

	both, err := admin.Create(e.ctx, tfe.AdminTerraformVersionCreateOptions{Version: tfe.String("2.0.1"), Archs: []*tfe.ToolVersionArchitecture{&amd, &arm}})
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Archs) != 2 || both.URL != amd.URL || both.Sha != amd.Sha {
		t.Errorf("archs: got %+v, url %q; want both builds, url of amd64", both.Archs, both.URL)
	}

	armOnly, err := admin.Update(e.ctx, both.ID, tfe.AdminTerraformVersionUpdateOptions{Archs: []*tfe.ToolVersionArchitecture{&arm}})
	if err != nil {
		t.Fatal(err)
	}
	if len(armOnly.Archs) != 1 || armOnly.URL != "" || armOnly.Sha != "" {
		t.Errorf("update to arm64 only: archs %+v, url %q sha %q; want one build and no url or sha", armOnly.Archs, armOnly.URL, armOnly.Sha)
	}
	back, err := admin.Update(e.ctx, both.ID, tfe.AdminTerraformVersionUpdateOptions{URL: tfe.String("https://example.test/new.zip"), Sha: tfe.String("ddd")})
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Archs) != 1 || back.Archs[0].Arch != "amd64" || back.URL != "https://example.test/new.zip" {
		t.Errorf("update with url and sha: archs %+v, url %q; want one amd64 build from them", back.Archs, back.URL)
	}

	if code, _ := e.raw("POST", "/api/v2/admin/terraform-versions", adminToken,
		`{"data":{"type":"terraform-versions","attributes":{"version":"2.0.2","archs":[{"url":"u","sha":"s","os":"windows","arch":"amd64"}]}}}`); code != 422 {
		t.Errorf("a windows build: got %d, want 422", code)
	}
}
