package events_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
)

// checkAppendJSON fails unless AppendJSON writes what json.Marshal writes.
func checkAppendJSON(t *testing.T, ev events.RunEvent) {
	t.Helper()
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("AppendJSON:\n got  %s\n want %s", got, want)
	}
}

// Every field of RunEvent, set, is written: a field added to the struct
// and not to AppendJSON fails here.
func TestAppendJSONWritesEveryField(t *testing.T) {
	var ev events.RunEvent
	v := reflect.ValueOf(&ev).Elem()
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Struct:
			f.Set(reflect.ValueOf(at.Add(time.Duration(i) * time.Second)))
		default:
			t.Fatalf("field %s of kind %s: teach AppendJSON and this test about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	checkAppendJSON(t, ev)
	checkAppendJSON(t, events.RunEvent{UpdatedAt: at, ReceivedAt: at}) // the optional fields left out
}

func TestAppendJSONEscapesAsEncodingJSON(t *testing.T) {
	at := time.Date(2019, 1, 25, 18, 37, 4, 0, time.UTC)
	for _, s := range []string{
		"",
		"plain",
		`quote " and backslash \`,
		"<script>alert('&')</script>",
		"tab\tnewline\nreturn\rbackspace\bform feed\f",
		"\x00\x01\x1f\x7f",
		"line separator \u2028 paragraph separator \u2029",
		"café ☕ 𝄞",
		"invalid \xff\xfe UTF-8 \xe2\x82",
	} {
		checkAppendJSON(t, events.RunEvent{RunID: s, Message: s, RunMessage: s, UpdatedAt: at, ReceivedAt: at, RunCreatedAt: at})
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("run-FwnENkvDnrpyFC7M", "Add five new queue workers", int64(1548441424), 0)
	f.Add("<&>", "\u2028\x00\xff", int64(-62135596800), 999999999)
	f.Fuzz(func(t *testing.T, id, msg string, sec int64, nsec int) {
		at := time.Unix(sec, int64(nsec)).UTC()
		if at.Year() < 1 || at.Year() > 9999 {
			t.Skip("Decode admits years 1 to 9999 only")
		}
		checkAppendJSON(t, events.RunEvent{RunID: id, WorkspaceName: msg, RunMessage: msg, RunCreatedAt: at, UpdatedAt: at, ReceivedAt: at})
	})
}
