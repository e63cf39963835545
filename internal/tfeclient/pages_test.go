package tfeclient_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// pagedList is a list of n items served a page at a time, as TFE does:
// page numbers from 1 (0 asks for the first), NextPage 0 on the last. It
// records the pages asked for, and fails the page numbered failOn.
type pagedList struct {
	n, size, failOn int
	noPagination    bool // the list answers without pagination
	asked           []tfe.ListOptions
}

var errPage = errors.New("the page failed")

func (l *pagedList) list(_ context.Context, page tfe.ListOptions) ([]int, *tfe.Pagination, error) {
	l.asked = append(l.asked, page)
	number := max(1, page.PageNumber)
	if number == l.failOn {
		return nil, nil, fmt.Errorf("page %d: %w", number, errPage)
	}
	var items []int
	for i := (number - 1) * l.size; i < min(l.n, number*l.size); i++ {
		items = append(items, i)
	}
	if l.noPagination {
		return items, nil, nil
	}
	p := &tfe.Pagination{CurrentPage: number, TotalCount: l.n}
	if number*l.size < l.n {
		p.NextPage = number + 1
	}
	return items, p, nil
}

func TestEachPage(t *testing.T) {
	for _, tc := range []struct {
		name         string
		list         pagedList
		maxPages     int
		enoughAt     int // each says enough once it has seen this item; -1: never
		eachFails    bool
		want         []int
		wantCalls    int
		wantErr      error
		wantAskedFor []int // page numbers asked for
	}{
		{name: "reads to the last page", list: pagedList{n: 7, size: 3}, enoughAt: -1,
			want: []int{0, 1, 2, 3, 4, 5, 6}, wantCalls: 3, wantAskedFor: []int{0, 2, 3}},
		{name: "an empty list is one call", list: pagedList{n: 0, size: 3}, enoughAt: -1,
			want: nil, wantCalls: 1, wantAskedFor: []int{0}},
		{name: "a full last page ends the list", list: pagedList{n: 6, size: 3}, enoughAt: -1,
			want: []int{0, 1, 2, 3, 4, 5}, wantCalls: 2, wantAskedFor: []int{0, 2}},
		{name: "no pagination is the last page", list: pagedList{n: 7, size: 3, noPagination: true}, enoughAt: -1,
			want: []int{0, 1, 2}, wantCalls: 1, wantAskedFor: []int{0}},
		{name: "honours the page limit", list: pagedList{n: 100, size: 3}, maxPages: 2, enoughAt: -1,
			want: []int{0, 1, 2, 3, 4, 5}, wantCalls: 2, wantAskedFor: []int{0, 2}},
		{name: "a limit past the end reads to the end", list: pagedList{n: 4, size: 3}, maxPages: 5, enoughAt: -1,
			want: []int{0, 1, 2, 3}, wantCalls: 2, wantAskedFor: []int{0, 2}},
		{name: "stops when each has seen enough", list: pagedList{n: 100, size: 3}, enoughAt: 4,
			want: []int{0, 1, 2, 3, 4, 5}, wantCalls: 2, wantAskedFor: []int{0, 2}},
		{name: "returns the list's error, the failed call counted", list: pagedList{n: 100, size: 3, failOn: 3}, enoughAt: -1,
			want: []int{0, 1, 2, 3, 4, 5}, wantCalls: 3, wantErr: errPage, wantAskedFor: []int{0, 2, 3}},
		{name: "the first page failing", list: pagedList{n: 100, size: 3, failOn: 1}, enoughAt: -1,
			want: nil, wantCalls: 1, wantErr: errPage, wantAskedFor: []int{0}},
		{name: "returns each's error", list: pagedList{n: 100, size: 3}, enoughAt: -1, eachFails: true,
			want: []int{0, 1, 2}, wantCalls: 1, wantErr: errEach, wantAskedFor: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.list
			var got []int
			calls, err := tfeclient.EachPage(context.Background(), l.list, tc.maxPages, func(items []int) (bool, error) {
				got = append(got, items...)
				if tc.eachFails {
					return true, errEach
				}
				return tc.enoughAt < 0 || !slices.Contains(items, tc.enoughAt), nil
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("items %v, want %v", got, tc.want)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			var asked []int
			for _, p := range l.asked {
				asked = append(asked, p.PageNumber)
				if p.PageSize != tfeclient.PageSize {
					t.Errorf("page %d asked with size %d, want %d", p.PageNumber, p.PageSize, tfeclient.PageSize)
				}
			}
			if !slices.Equal(asked, tc.wantAskedFor) {
				t.Errorf("pages asked for %v, want %v", asked, tc.wantAskedFor)
			}
		})
	}
}

var errEach = errors.New("each failed")

func TestAll(t *testing.T) {
	l := pagedList{n: 8, size: 3}
	got, err := tfeclient.All(context.Background(), l.list)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("All: %v, %v; want 0…7", got, err)
	}
	l = pagedList{n: 8, size: 3, failOn: 2}
	got, err = tfeclient.All(context.Background(), l.list)
	if !errors.Is(err, errPage) || got != nil {
		t.Fatalf("All with a failing page: %v, %v; want no items and the page's error", got, err)
	}
}

// Through go-tfe against the simulator, All reads a list longer than a
// page whole, in one call per page.
func TestAllReadsEveryPageOfTFE(t *testing.T) {
	sim, url := startSim(t, -1, nil)
	sc := &tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{Name: "acme", Email: "ops@acme.test"}}}
	for i := range 2*tfeclient.PageSize + 5 {
		sc.Organizations[0].Workspaces = append(sc.Organizations[0].Workspaces, tfesim.WorkspaceSpec{Name: fmt.Sprintf("ws-%03d", i)})
	}
	if err := sim.LoadScenario(sc); err != nil {
		t.Fatal(err)
	}
	c := client(t, url, tfeclient.Options{})
	sim.ResetStats()
	opts := &tfe.WorkspaceListOptions{}
	ws, err := tfeclient.All(context.Background(), func(ctx context.Context, page tfe.ListOptions) ([]*tfe.Workspace, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := c.Workspaces.List(ctx, "acme", opts)
		if err != nil {
			return nil, nil, err
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, w := range ws {
		names[w.Name] = true
	}
	if len(ws) != 2*tfeclient.PageSize+5 || len(names) != len(ws) {
		t.Errorf("read %d workspaces (%d names), want %d, each once", len(ws), len(names), 2*tfeclient.PageSize+5)
	}
	if n := apiRequests(sim); n != 3 {
		t.Errorf("%d requests, want 3 (one per page)", n)
	}
}
