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
