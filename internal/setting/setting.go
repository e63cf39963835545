// Package setting is how the components report an option that cannot
// work: an *Error names the options at fault by their fields, so that the
// component's own message reads "AckWait (10ms) must be at least 100ms"
// and the daemon, which knows which flag sets which field, says "--ack-wait
// (10ms) must be at least 100ms" from the same error. Every component
// validates its options once, in its Validate; the daemon maps, it does
// not check again.
package setting

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Error is an option that cannot work. Its text names options as {Field}
// (a Go field path of the component's options, such as {AckWait} or
// {Policy.Recheck}); Error prints the field names, Text what a caller
// calls them.
type Error struct {
	// Field is the option at fault, the first one the text names.
	Field string
	text  string
}

var fieldRef = regexp.MustCompile(`\{([A-Za-z][A-Za-z0-9.]*)\}`)

// Errorf returns an *Error. format names options as {Field}; the first
// named is the one at fault. The arguments are formatted as fmt does.
func Errorf(format string, args ...any) *Error {
	text := fmt.Sprintf(format, args...)
	field := ""
	if m := fieldRef.FindStringSubmatch(format); m != nil {
		field = m[1]
	}
	return &Error{Field: field, text: text}
}

// Error names the options by their fields.
func (e *Error) Error() string { return e.Text(func(field string) string { return field }) }

// Text names each option as name says.
func (e *Error) Text(name func(field string) string) string {
	return fieldRef.ReplaceAllStringFunc(e.text, func(ref string) string {
		return name(ref[1 : len(ref)-1])
	})
}

// Within returns err with the fields it names prefixed by prefix and a
// dot, for options nested in others (the dispatcher's Policy). Errors that
// are not *Error are returned as they are.
func Within(prefix string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	out := &Error{Field: prefix + "." + e.Field}
	out.text = fieldRef.ReplaceAllStringFunc(e.text, func(ref string) string {
		return "{" + prefix + "." + ref[1:]
	})
	return out
}

// Duration formats d as a flag is written: 168h, not 168h0m0s.
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
