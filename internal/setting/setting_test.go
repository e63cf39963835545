package setting

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestErrorNamesTheFieldsAsTheCallerCallsThem(t *testing.T) {
	err := Errorf("{StateTTL} (%s) must be longer than {AckWait} (%s)", Duration(time.Second), Duration(30*time.Second))
	if got, want := err.Error(), "StateTTL (1s) must be longer than AckWait (30s)"; got != want {
		t.Errorf("Error: got %q, want %q", got, want)
	}
	if err.Field != "StateTTL" {
		t.Errorf("Field: got %q, want StateTTL", err.Field)
	}
	flag := func(field string) string { return "--" + strings.ToLower(field) }
	if got, want := err.Text(flag), "--statettl (1s) must be longer than --ackwait (30s)"; got != want {
		t.Errorf("Text: got %q, want %q", got, want)
	}
}

func TestWithinPrefixesEveryField(t *testing.T) {
	wrapped := fmt.Errorf("policy: %w", Errorf("{Recheck} (%s) must not be negative", Duration(-time.Second)))
	err := Within("Policy", wrapped)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T, want *Error", err)
	}
	if e.Field != "Policy.Recheck" || e.Error() != "Policy.Recheck (-1s) must not be negative" {
		t.Errorf("got field %q, text %q", e.Field, e.Error())
	}
	plain := errors.New("plain")
	if Within("Policy", plain) != plain {
		t.Error("an error that names no field is changed")
	}
}

func TestDurationReadsAsAFlag(t *testing.T) {
	for d, want := range map[time.Duration]string{7 * 24 * time.Hour: "168h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m",
		100 * time.Millisecond: "100ms", 0: "0s", 90 * time.Second: "1m30s"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v): got %q, want %q", d, got, want)
		}
	}
}
