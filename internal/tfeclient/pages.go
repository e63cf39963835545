package tfeclient

import (
	"context"

	tfe "github.com/hashicorp/go-tfe"
)

// PageSize is the page size of every list read page by page: TFE's
// largest. (Reads of one short page, such as a workspace's latest runs,
// ask for what they need.)
const PageSize = 100

// Lister reads one page of a TFE list: the caller puts page into its
// list's options (they embed tfe.ListOptions) and returns the page's items
// and its pagination. A nil pagination means the list has no further page.
type Lister[T any] func(ctx context.Context, page tfe.ListOptions) ([]T, *tfe.Pagination, error)

// EachPage reads the pages of a list in order, from the first, and gives
// each page's items to each. It stops after the last page, after maxPages
// pages when maxPages is positive (otherwise it reads every page), when
// each reports that it has seen enough (more false), or at the first error
// of list or each, which it returns as is. It reports how many pages it
// asked list for, the one that failed included.
//
// The first page is asked for with no page number (TFE's first), the
// others with the number the previous page gave as next, all with
// PageSize.
func EachPage[T any](ctx context.Context, list Lister[T], maxPages int, each func(items []T) (more bool, err error)) (int, error) {
	page := tfe.ListOptions{PageSize: PageSize}
	for calls := 1; ; calls++ {
		items, pagination, err := list(ctx, page)
		if err != nil {
			return calls, err
		}
		more, err := each(items)
		if err != nil {
			return calls, err
		}
		if !more || pagination == nil || pagination.NextPage == 0 || (maxPages > 0 && calls >= maxPages) {
			return calls, nil
		}
		page.PageNumber = pagination.NextPage
	}
}

// All reads every page of a list and returns its items in order; on an
// error it returns the error alone.
func All[T any](ctx context.Context, list Lister[T]) ([]T, error) {
	var out []T
	_, err := EachPage(ctx, list, 0, func(items []T) (bool, error) {
		out = append(out, items...)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
