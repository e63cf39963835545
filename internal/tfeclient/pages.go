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

// Page is one page of a TFE list in the orchestrator's own types: its
// items and the number of the next page, 0 after the last.
type Page[T any] struct {
	Items []T
	Next  int
}

// PageReader reads the page of a list of this number (0: the first, asked
// for with no number), of PageSize items.
type PageReader[T any] func(ctx context.Context, page int) (Page[T], error)

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
	return ReadPages(ctx, func(ctx context.Context, page int) (Page[T], error) {
		items, pagination, err := list(ctx, tfe.ListOptions{PageNumber: page, PageSize: PageSize})
		if err != nil {
			return Page[T]{}, err
		}
		p := Page[T]{Items: items}
		if pagination != nil {
			p.Next = pagination.NextPage
		}
		return p, nil
	}, maxPages, each)
}

// ReadPages is EachPage over a PageReader: it reads the pages of a list
// in order, from the first, and gives each page's items to each, until
// the last page, maxPages pages when maxPages is positive, each's enough
// (more false), or the first error of read or each (returned as is). It
// reports how many pages it asked read for, the one that failed included.
func ReadPages[T any](ctx context.Context, read PageReader[T], maxPages int, each func(items []T) (more bool, err error)) (int, error) {
	page := 0
	for calls := 1; ; calls++ {
		p, err := read(ctx, page)
		if err != nil {
			return calls, err
		}
		more, err := each(p.Items)
		if err != nil {
			return calls, err
		}
		if !more || p.Next == 0 || (maxPages > 0 && calls >= maxPages) {
			return calls, nil
		}
		page = p.Next
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
