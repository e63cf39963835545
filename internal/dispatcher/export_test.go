package dispatcher

// SetHook installs a function called at each step boundary of a dispatch
// ("intent", "created", "recorded"); returning ErrCrash stops the
// dispatcher there as if the process died.
func (d *Dispatcher) SetHook(h func(step string) error) { d.hook = h }

// ErrCrash is what a hook returns to simulate a crash.
var ErrCrash = errCrash
