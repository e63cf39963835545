package cascade

import (
	"reflect"
	"testing"
	"time"
)

// Only statuses that changed are stored: a field that equal did not
// compare would silently never be written. Each field set in turn must
// make a status differ from the zero one.
func TestStatusEqualSeesEveryField(t *testing.T) {
	var zero Status
	typ := reflect.TypeOf(zero)
	for k := range typ.NumField() {
		var s Status
		f := reflect.ValueOf(&s).Elem().Field(k)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int:
			f.SetInt(1)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"run-1"}))
		case reflect.Struct:
			f.Set(reflect.ValueOf(t0.Add(time.Second)))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", typ.Field(k).Name, f.Kind())
		}
		if s.equal(zero) || zero.equal(s) {
			t.Errorf("a status with %s set equals the zero status", typ.Field(k).Name)
		}
	}
	// The same instant in two zones, and an empty list against none, are
	// the same status.
	a := Status{Since: t0, PastRuns: []string{}}
	b := Status{Since: t0.In(time.FixedZone("CET", 3600))}
	if !a.equal(b) {
		t.Error("the same instant in two zones, or an empty list and none, compare different")
	}
}

// A run creation the rate budget never sent spends no attempt: the member
// is ready to create it again, and MaxAttempts counts only what TFE saw.
func TestNotSentSpendsNoAttempt(t *testing.T) {
	p := plan(t, "root", "root>a")
	st := []Status{Initial(p, 0)}
	st[0] = Status{State: Ready, ReadyAt: at(0), Since: at(0)}
	pol := Policy{NativeGrace: time.Second, MaxAttempts: 2}
	for range 5 {
		d := Decide(Input{Plan: p, Statuses: st, Facts: Facts{Workspaces: map[string]Workspace{p.Members[0].WorkspaceID: {ID: p.Members[0].WorkspaceID, HasConfiguration: true}},
			Lists: map[string][]Run{p.Members[0].WorkspaceID: nil}}, Policy: pol, Now: t0.Add(time.Minute)})
		st = d.Statuses
		if st[0].State != Dispatching || st[0].Attempts != 1 {
			t.Fatalf("got %s with %d attempts, want dispatching with 1", st[0].State, st[0].Attempts)
		}
		st[0] = AfterNotSent(st, 0)
		if st[0].State != Ready || st[0].Attempts != 0 {
			t.Fatalf("after not sent: got %s with %d attempts, want ready with 0", st[0].State, st[0].Attempts)
		}
	}
}
